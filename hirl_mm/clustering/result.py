"""The output of hierarchical clustering and cheap statistics about it."""
from dataclasses import dataclass
from typing import Dict, List, Union

import torch
from torch import Tensor


@dataclass
class HierarchicalClusteringResult:
    """Hierarchical prototypes: centroids per level and the tree that links the levels.

    Level 0 is the finest level (clusters of images); level ``L-1`` the coarsest.

    Attributes:
        centroids (list[Tensor]): per level ``l``, ``[K_l, D]`` float32 with L2-normalised
            rows.
        parents (list[Tensor]): per level ``l`` in ``0..L-2``, ``[K_l]`` int64: the
            level-``(l+1)`` cluster of each level-``l`` centroid.
        im2cluster (list[Tensor]): per level ``l``, ``[N]`` int64: the level-``l`` cluster of
            each point, with ``im2cluster[l] == parents[l-1][im2cluster[l-1]]``.
    """

    centroids: List[Tensor]
    parents: List[Tensor]
    im2cluster: List[Tensor]

    def __post_init__(self) -> None:
        if len(self.centroids) != len(self.im2cluster) or \
                len(self.parents) != max(len(self.centroids) - 1, 0):
            raise ValueError(
                'HierarchicalClusteringResult needs one centroids and im2cluster entry per '
                'level and one parents entry per level but the coarsest; got '
                f'{len(self.centroids)} centroids, {len(self.parents)} parents, '
                f'{len(self.im2cluster)} im2cluster')

    @property
    def num_levels(self) -> int:
        """int: The number of levels ``L``."""
        return len(self.centroids)

    @property
    def num_clusters(self) -> List[int]:
        """list[int]: ``K_l`` for every level, finest first."""
        return [int(c.shape[0]) for c in self.centroids]

    def cluster_sizes(self, level: int) -> Tensor:
        """Number of points in each cluster of one level.

        Args:
            level (int): The level, ``0 <= level < num_levels``.

        Returns:
            Tensor: ``[K_level]`` int64 counts (empty clusters count 0).
        """
        return torch.bincount(self.im2cluster[level],
                              minlength=self.centroids[level].shape[0])

    def to(self, device: Union[str, torch.device]) -> 'HierarchicalClusteringResult':
        """Copy of the result with every tensor on ``device``.

        Args:
            device (str | torch.device): The target device.

        Returns:
            HierarchicalClusteringResult: A new result; ``self`` is unchanged.
        """
        return HierarchicalClusteringResult(
            centroids=[c.to(device) for c in self.centroids],
            parents=[p.to(device) for p in self.parents],
            im2cluster=[a.to(device) for a in self.im2cluster])


def cluster_size_stats(result: HierarchicalClusteringResult) -> List[Dict[str, Union[int, float]]]:
    """Per-level cluster size statistics, cheap enough to log every epoch.

    Args:
        result (HierarchicalClusteringResult): The clustering to describe.

    Returns:
        list[dict]: One dict per level with keys ``level``, ``num_clusters``,
        ``num_points``, ``min_size``, ``median_size``, ``max_size`` and ``num_empty``.
    """
    stats = []
    for level in range(result.num_levels):
        sizes = result.cluster_sizes(level).cpu()
        stats.append(
            dict(level=level,
                 num_clusters=int(sizes.numel()),
                 num_points=int(sizes.sum()),
                 min_size=int(sizes.min()),
                 median_size=float(sizes.double().quantile(0.5)),
                 max_size=int(sizes.max()),
                 num_empty=int((sizes == 0).sum())))
    return stats


def format_cluster_size_stats(stats: List[Dict[str, Union[int, float]]]) -> str:
    """Render :func:`cluster_size_stats` as one line per level for a log.

    Args:
        stats (list[dict]): The output of :func:`cluster_size_stats`.

    Returns:
        str: Lines like ``level 0: K=1000, sizes min/median/max 12/98.0/310, 0 empty``.
    """
    return '\n'.join(
        f"level {s['level']}: K={s['num_clusters']}, sizes min/median/max "
        f"{s['min_size']}/{s['median_size']:g}/{s['max_size']}, {s['num_empty']} empty"
        for s in stats)
