"""HIRL's hierarchical prototypes as a checkpoint stores them, and assignment to them.

HIRL checkpoints hold ``prototypes.centroids_l`` ``[K_l, D]``, ``prototypes.parents_l``,
``prototypes.im2cluster_l`` (the clustered training images' assignments),
``prototypes.num_updates`` (clustering rounds; 0 = saved during the warm-up) and, since
the embedding option, ``prototypes.embedding_space``: the space the centroids live in
(``'neck'`` or ``'backbone'``). Checkpoints written before it (*legacy*) have no such key;
their prototypes were built on the pooled backbone.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from hirl_mm.clustering import HierarchicalClusteringResult
from hirl_mm.models.utils.hierarchical_prototypes import checkpoint_space

__all__ = ['PROTOTYPES_PREFIX', 'StoredPrototypes', 'load_stored_prototypes',
           'read_prototypes', 'assign_to_prototypes']

PROTOTYPES_PREFIX = 'prototypes.'


@dataclass
class StoredPrototypes:
    """The prototypes of a HIRL checkpoint.

    Attributes:
        centroids (list[Tensor]): ``[K_l, D]`` float32 per level, finest first.
        parents (list[Tensor]): ``[K_l]`` int64 per level but the top one.
        im2cluster (list[Tensor]): ``[N]`` int64 per level: the stored assignment of the
            clustered (training) images; empty before the first clustering round.
        num_updates (int, optional): Clustering rounds so far (0: saved during the
            warm-up; None: the state dict does not say, the centroids are taken as built).
        space (str): The embedding space of the centroids, ``'neck'`` or ``'backbone'``.
        recorded (bool): Whether the checkpoint records ``space``; False for legacy
            checkpoints, whose prototypes were built on the pooled backbone.
    """

    centroids: List[Tensor]
    parents: List[Tensor]
    im2cluster: List[Tensor]
    num_updates: Optional[int]
    space: str
    recorded: bool

    @property
    def ready(self) -> bool:
        """Whether a clustering round has filled the prototypes."""
        return self.num_updates is None or self.num_updates > 0

    @property
    def dim(self) -> int:
        """``D``, the width of the embedding space."""
        return int(self.centroids[0].shape[1])

    @property
    def num_clusters(self) -> List[int]:
        """``K_l`` per level, finest first."""
        return [int(c.shape[0]) for c in self.centroids]

    @property
    def num_samples(self) -> int:
        """``N``, the number of clustered images (0 before the first round)."""
        return int(self.im2cluster[0].shape[0]) if self.im2cluster else 0

    def describe_space(self) -> str:
        """E.g. ``'neck (128-d)'``, or ``'backbone (2048-d; legacy checkpoint)'``."""
        legacy = '' if self.recorded else '; legacy checkpoint'
        return f'{self.space} ({self.dim}-d{legacy})'

    def as_result(self) -> HierarchicalClusteringResult:
        """The stored clustering (assignments of the clustered images included)."""
        return HierarchicalClusteringResult(centroids=self.centroids, parents=self.parents,
                                            im2cluster=self.im2cluster)


def load_stored_prototypes(state_dict: Dict[str, Tensor]) -> Optional[StoredPrototypes]:
    """The prototypes stored in a checkpoint's state dict, clustered yet or not.

    Args:
        state_dict (dict): A checkpoint's state dict.

    Returns:
        StoredPrototypes | None: None when the checkpoint has no
        ``prototypes.centroids_0`` (not a HIRL checkpoint).

    Raises:
        KeyError: If a level lacks its ``parents_l``.
    """
    prefix = PROTOTYPES_PREFIX
    if f'{prefix}centroids_0' not in state_dict:
        return None
    centroids, parents, im2cluster = [], [], []
    level = 0
    while f'{prefix}centroids_{level}' in state_dict:
        centroids.append(state_dict[f'{prefix}centroids_{level}'].float())
        assign = state_dict.get(f'{prefix}im2cluster_{level}')
        im2cluster.append(torch.zeros(0, dtype=torch.long) if assign is None
                          else assign.long())
        level += 1
    for level in range(len(centroids) - 1):
        name = f'{prefix}parents_{level}'
        if name not in state_dict:
            raise KeyError(f'The checkpoint has {len(centroids)} prototype levels but no '
                           f'{name}.')
        parents.append(state_dict[name].long())
    updates = state_dict.get(f'{prefix}num_updates')
    num_updates = None if updates is None else int(updates)
    return StoredPrototypes(
        centroids=centroids, parents=parents, im2cluster=im2cluster,
        num_updates=num_updates, space=checkpoint_space(state_dict, prefix),
        recorded=f'{prefix}embedding_space' in state_dict)


def read_prototypes(state_dict: Dict[str, Tensor]
                    ) -> Optional[Tuple[List[Tensor], List[Tensor]]]:
    """HIRL's hierarchical prototypes stored in a checkpoint, if it has any.

    Args:
        state_dict (dict): A checkpoint's state dict.

    Returns:
        tuple | None: ``(centroids, parents)``: ``[K_l, D]`` float32 per level, finest
        first, and ``[K_l]`` int64 per level but the top one. ``None`` when the checkpoint
        has no ``prototypes.centroids_0`` or was saved before the first clustering round
        (``prototypes.num_updates == 0``).
    """
    stored = load_stored_prototypes(state_dict)
    if stored is None or not stored.ready:
        return None
    return stored.centroids, stored.parents


@torch.no_grad()
def assign_to_prototypes(features: Tensor, centroids: Sequence[Tensor],
                         parents: Sequence[Tensor],
                         chunk_size: int = 4096) -> HierarchicalClusteringResult:
    """Put each feature in its nearest level-0 prototype and lift it through the parents.

    Nearest means the largest dot product: cosine similarity for L2-normalised features
    and centroids, as in HIRL's iter-wise assignment.

    Args:
        features (Tensor): ``[N, D]`` (L2-normalised) features, in the prototypes' space.
        centroids (Sequence[Tensor]): ``[K_l, D]`` per level, finest first.
        parents (Sequence[Tensor]): ``[K_l]`` per level but the top one.
        chunk_size (int): Rows per similarity product (memory ``chunk_size * K_0``).

    Returns:
        HierarchicalClusteringResult: The prototypes with ``im2cluster[l]`` = the level-l
        prototype of every feature, on ``features``' device.

    Raises:
        ValueError: If the parents do not fit the levels, or the widths differ.
    """
    if len(parents) != len(centroids) - 1:
        raise ValueError(f'{len(centroids)} levels need {len(centroids) - 1} parents, got '
                         f'{len(parents)}.')
    if features.shape[1] != centroids[0].shape[1]:
        raise ValueError(f'The features have {features.shape[1]} dimensions but the '
                         f'prototypes {centroids[0].shape[1]}.')
    device = features.device
    centroids = [c.to(device=device, dtype=torch.float32) for c in centroids]
    parents = [p.to(device=device, dtype=torch.long) for p in parents]
    nearest = torch.cat([
        (features[i:i + chunk_size].float() @ centroids[0].T).argmax(dim=1)
        for i in range(0, features.shape[0], chunk_size)
    ])
    im2cluster = [nearest]
    for parent in parents:
        im2cluster.append(parent[im2cluster[-1]])
    return HierarchicalClusteringResult(centroids=centroids, parents=parents,
                                        im2cluster=im2cluster)
