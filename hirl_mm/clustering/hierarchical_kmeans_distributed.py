"""Hierarchical k-means of a data set sharded across processes (torch.distributed).

Level 0 runs :func:`.kmeans_distributed.sharded_kmeans` on every rank's own rows; the
upper levels cluster the ``K_0`` (then ``K_1``, ...) centroids, which every rank holds
identically, with the deterministic single-process torch k-means, so every rank computes
the same tree. The only ``N``-sized traffic is the int64 level-0 assignment and the
``sample_idx`` of every row, gathered once (any rank's sampler may draw any sample); the
upper levels' assignments follow from the parents.
"""
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine import dist
from torch import Tensor

from hirl_mm.utils import feature_extraction
from hirl_mm.utils.dist_utils import all_gather_rows
from .kmeans_distributed import sharded_kmeans
from .kmeans_torch import kmeans as torch_kmeans
from .result import HierarchicalClusteringResult


def check_shard(features: Tensor, sample_idx: Tensor, num_samples: int,
                num_clusters: Sequence[int]) -> Tensor:
    """Validate this rank's shard and the partition of ``0..N-1`` over the ranks.

    Args:
        features (Tensor): ``[n_rank, D]`` this rank's rows.
        sample_idx (Tensor): ``[n_rank]`` their sample indices.
        num_samples (int): ``N`` over all ranks.
        num_clusters (Sequence[int]): ``K_l`` per level (``K_0 <= N`` is checked).

    Returns:
        Tensor: ``sample_idx`` as int64 on the features' device.

    Raises:
        ValueError: Shapes disagree, a row is not finite, or the ranks' indices are not
            each of ``0..N-1`` exactly once.
    """
    if features.dim() != 2 or sample_idx.dim() != 1 or \
            features.shape[0] != sample_idx.shape[0]:
        raise ValueError(
            f'A shard needs [n, D] features and [n] sample indices, got '
            f'{tuple(features.shape)} and {tuple(sample_idx.shape)}; pass one sample_idx '
            f'per feature row.')
    if not features.is_floating_point():
        raise ValueError(f'Shard features must be floating point, got {features.dtype}.')
    sample_idx = sample_idx.to(device=features.device, dtype=torch.long)
    # Row-wise max/min propagate NaN and +/-Inf without an [n, D] boolean temporary.
    bad = ~(torch.isfinite(features.amax(dim=1)) & torch.isfinite(features.amin(dim=1))) \
        if features.shape[0] else torch.zeros(0, dtype=torch.bool)
    num_bad = torch.tensor([int(bad.sum())], device=features.device)
    dist.all_reduce(num_bad)
    if int(num_bad):
        raise ValueError(
            f'features contain NaN/Inf in {int(num_bad)} rows over all ranks; fix the '
            f'feature extraction (e.g. a diverged model or fp16 overflow) before clustering.')
    in_range = bool(((sample_idx >= 0) & (sample_idx < num_samples)).all())
    counts = torch.bincount(sample_idx.clamp(0, max(num_samples - 1, 0)),
                            minlength=num_samples).to(torch.int32)
    flags = torch.tensor([0 if in_range else 1], dtype=torch.int32, device=counts.device)
    dist.all_reduce(counts)
    dist.all_reduce(flags)
    if int(flags) or bool((counts != 1).any()):
        raise ValueError(
            f'The ranks\' shards must hold each of the {num_samples} samples exactly once by '
            f'sample_idx; {int((counts == 0).sum())} are missing, '
            f'{int((counts > 1).sum())} repeated and {int(flags)} rank(s) hold indices '
            f'outside 0..{num_samples - 1}. Extract with an unpadded sampler '
            f'(DefaultSampler(round_up=False)).')
    if num_clusters[0] > num_samples:
        raise ValueError(
            f'num_clusters[0]={num_clusters[0]} (K_0) is larger than the number of points '
            f'N={num_samples}; use at most N clusters at level 0 or cluster more images.')
    return sample_idx


def gather_assignment(assignment: Tensor, sample_idx: Tensor, num_samples: int) -> Tensor:
    """Every rank's int64 assignment, placed by ``sample_idx`` into ``[N]`` on every rank."""
    rows = all_gather_rows(assignment.unsqueeze(1))
    indices = all_gather_rows(sample_idx)
    return feature_extraction.place_by_index(rows, indices, num_samples).squeeze(1)


def sharded_hierarchical_kmeans(
        features: Tensor,
        sample_idx: Tensor,
        num_samples: int,
        num_clusters: List[int],
        num_iters: int,
        num_redo: Callable[[int], int],
        seed: int,
        max_points_per_centroid: int,
        init: Optional[Sequence[Optional[Tensor]]] = None,
        verbose: bool = False,
        precision: str = 'fp32') -> HierarchicalClusteringResult:
    """Bottom-up hierarchical k-means of a sharded data set; the same result on every rank.

    Args:
        features (Tensor): ``[n_rank, D]`` this rank's rows (float32, float16 or bfloat16;
            the maths runs in float32 chunks).
        sample_idx (Tensor): ``[n_rank]`` their indices in ``0..N-1``.
        num_samples (int): ``N``.
        num_clusters (list[int]): ``K_l`` per level, finest first (validated).
        num_iters (int): Lloyd iterations per restart.
        num_redo (Callable[[int], int]): Restarts of a level given whether it is warm
            started (``num_redo(1)``) or not (``num_redo(0)``).
        seed (int): Level ``l`` uses ``seed + l``.
        max_points_per_centroid (int): Training subset bound per level.
        init (Sequence[Tensor | None], optional): Per level, ``[K_l, D]`` centroids to warm
            start from (identical on every rank), or None.
        verbose (bool): Log every restart.
        precision (str): Of the distance products (``'fp32'``, ``'tf32'``, ``'bf16'``).

    Returns:
        HierarchicalClusteringResult: On the features' device, identical on every rank.
    """
    sample_idx = check_shard(features, sample_idx, num_samples, num_clusters)
    init = list(init) if init is not None else [None] * len(num_clusters)
    level0 = sharded_kmeans(features, sample_idx, num_samples, num_clusters[0], num_iters,
                            num_redo(int(init[0] is not None)), seed,
                            max_points_per_centroid, init[0], verbose,
                            precision=precision)
    im2cluster = [gather_assignment(level0.assignment, sample_idx, num_samples)]
    centroids = [F.normalize(level0.centroids, dim=1)]
    parents: List[Tensor] = []
    for level, k in enumerate(num_clusters[1:], start=1):
        # Every rank clusters the same K_{l-1} centroids with the same seed: same result.
        level_centroids, assignment = torch_kmeans(
            centroids[-1], k, num_iters, num_redo(int(init[level] is not None)),
            seed + level, max_points_per_centroid, 0, verbose, init[level],
            precision=precision)
        parents.append(assignment)
        im2cluster.append(assignment[im2cluster[-1]])
        centroids.append(F.normalize(level_centroids, dim=1))
    return HierarchicalClusteringResult(centroids=centroids, parents=parents,
                                        im2cluster=im2cluster)
