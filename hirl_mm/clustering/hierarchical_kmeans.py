"""Bottom-up hierarchical k-means: the hierarchical prototypes of HIRL."""
import logging
import numbers
from typing import List, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor

from hirl_mm.registry import CLUSTERERS
from .backends import BACKENDS, get_kmeans_fn, resolve_backend
from .result import HierarchicalClusteringResult

__all__ = ['HierarchicalKMeans', 'HierarchicalClusteringResult']


def _check_num_clusters(num_clusters: Sequence[int]) -> List[int]:
    """Validate the per-level cluster counts (finest first) and return them as ints."""
    example = 'e.g. num_clusters=[30000, 10000, 1000]'
    if isinstance(num_clusters, (str, bytes)) or not isinstance(num_clusters, Sequence):
        raise ValueError(f'num_clusters must be a list of cluster counts, finest level first '
                         f'({example}), got {num_clusters!r}.')
    if len(num_clusters) == 0:
        raise ValueError(f'num_clusters is empty: give at least one level ({example}).')
    for k in num_clusters:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k <= 0:
            raise ValueError(f'num_clusters must hold positive integers, got {list(num_clusters)}'
                             f'; use positive cluster counts ({example}).')
    counts = [int(k) for k in num_clusters]
    for level in range(1, len(counts)):
        prev, cur = counts[level - 1], counts[level]
        if cur >= prev:
            relation = 'larger than' if cur > prev else 'equal to'
            raise ValueError(
                f'num_clusters must be strictly decreasing from level 0 (finest) to the '
                f'coarsest level, got {counts}: K_{level}={cur} is {relation} '
                f'K_{level - 1}={prev} (a level clusters the centroids of the level below, so it '
                f'needs fewer clusters). Order the list fine-to-coarse without repeats, '
                f'{example}.')
    return counts


def _check_features(features: Tensor, num_clusters: List[int]) -> Tensor:
    """Validate the points to cluster; returns them as a detached tensor."""
    if isinstance(features, np.ndarray):
        features = torch.from_numpy(features)
    if not isinstance(features, Tensor):
        raise TypeError(f'features must be a torch.Tensor of shape [N, D], got '
                        f'{type(features).__name__}.')
    features = features.detach()
    if features.dim() != 2:
        raise ValueError(f'features must be a 2-D tensor [N, D] (one row per image), got shape '
                         f'{tuple(features.shape)}; flatten or stack the embeddings first.')
    num_points, dim = features.shape
    if dim == 0:
        raise ValueError('features have 0 dimensions (shape [N, 0]); nothing to cluster.')
    if num_clusters[0] > num_points:
        raise ValueError(
            f'num_clusters[0]={num_clusters[0]} (K_0) is larger than the number of points '
            f'N={num_points}; use at most N clusters at level 0 or cluster more images.')
    if not features.is_floating_point():
        features = features.float()
    # Row-wise max/min propagate NaN and +/-Inf without an [N, D] boolean temporary.
    bad_rows = ~(torch.isfinite(features.amax(dim=1)) & torch.isfinite(features.amin(dim=1)))
    num_bad = int(bad_rows.sum())
    if num_bad:
        first = int(torch.nonzero(bad_rows)[0])
        raise ValueError(
            f'features contain NaN/Inf in {num_bad} of {num_points} rows (first: row {first}); '
            f'fix the feature extraction (e.g. a diverged model or fp16 overflow) or drop those '
            f'rows before clustering.')
    return features


@CLUSTERERS.register_module()
class HierarchicalKMeans:
    """Bottom-up hierarchical k-means (the hierarchical prototypes of HIRL).

    Level 0 clusters the ``N`` points into ``K_0`` clusters; level ``l > 0`` clusters the
    L2-normalised ``K_{l-1}`` centroids of level ``l-1`` into ``K_l`` clusters. Level ``l``
    uses the seed ``seed + l`` (the reference used the level index).

    Args:
        num_clusters (Sequence[int]): ``K_l`` per level, finest first, strictly decreasing.
        backend (str): ``'auto'`` (faiss if importable, else torch), ``'faiss'`` or
            ``'torch'``.
        num_iters (int): Lloyd iterations per restart.
        num_redo (int): Restarts per level; the lowest objective wins.
        seed (int): Seed of level 0; level ``l`` uses ``seed + l``.
        max_points_per_centroid (int): Each level trains on a random subset of at most
            ``K_l * max_points_per_centroid`` points.
        min_points_per_centroid (int): Warn (once per level) below this many points per
            centroid.
        verbose (bool): Let the back end report its progress.
    """

    def __init__(self,
                 num_clusters: Sequence[int],
                 backend: str = 'auto',
                 num_iters: int = 20,
                 num_redo: int = 5,
                 seed: int = 0,
                 max_points_per_centroid: int = 1000,
                 min_points_per_centroid: int = 10,
                 verbose: bool = False) -> None:
        self.num_clusters = _check_num_clusters(num_clusters)
        for name, value, low in (('num_iters', num_iters, 1), ('num_redo', num_redo, 1),
                                 ('max_points_per_centroid', max_points_per_centroid, 1),
                                 ('min_points_per_centroid', min_points_per_centroid, 0)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                    or value < low:
                raise ValueError(f'{name} must be an integer >= {low}, got {value!r}.')
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}.')
        # Resolve now so that a config asking for a missing faiss fails when it is built.
        self.backend = resolve_backend(backend)
        if backend == 'auto' and self.backend == 'torch':
            print_log('faiss is not installed: HierarchicalKMeans uses the pure-torch k-means '
                      '(pip install faiss-cpu or faiss-gpu for the reference back end).',
                      logger='current')
        self._kmeans = get_kmeans_fn(self.backend)
        self.num_iters = int(num_iters)
        self.num_redo = int(num_redo)
        self.seed = int(seed)
        self.max_points_per_centroid = int(max_points_per_centroid)
        self.min_points_per_centroid = int(min_points_per_centroid)
        self.verbose = verbose

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_clusters={self.num_clusters}, '
                f'backend={self.backend!r}, num_iters={self.num_iters}, '
                f'num_redo={self.num_redo}, seed={self.seed})')

    def _warn_if_sparse(self, level: int, num_points: int, k: int) -> None:
        """Warn through the logger when a level has too few points per centroid."""
        if num_points < k * self.min_points_per_centroid:
            print_log(
                f'Hierarchical k-means level {level}: {num_points} points for {k} clusters '
                f'({num_points / k:.1f} per cluster) is fewer than min_points_per_centroid='
                f'{self.min_points_per_centroid}; clusters may be poor. Use fewer clusters at '
                f'this level or more data.',
                logger='current',
                level=logging.WARNING)

    def __call__(self, features: Tensor) -> HierarchicalClusteringResult:
        """Cluster ``features`` level by level.

        Args:
            features (Tensor): ``[N, D]`` finite points (typically L2-normalised image
                embeddings), on any device.

        Returns:
            HierarchicalClusteringResult: Centroids, parents and per-point assignments of every
            level, on ``features``' device.

        Raises:
            ValueError: ``features`` is not 2-D, holds NaN/Inf, or has fewer than ``K_0`` rows.
        """
        features = _check_features(features, self.num_clusters)
        device = features.device
        centroids: List[Tensor] = []
        parents: List[Tensor] = []
        im2cluster: List[Tensor] = []
        points = features
        for level, k in enumerate(self.num_clusters):
            self._warn_if_sparse(level, points.shape[0], k)
            level_centroids, assignment = self._kmeans(
                points, k, self.num_iters, self.num_redo, self.seed + level,
                self.max_points_per_centroid, self.min_points_per_centroid, self.verbose)
            assignment = assignment.to(device=device, dtype=torch.long)
            if level == 0:
                im2cluster.append(assignment)
            else:
                # The points of this level are the centroids of the level below.
                parents.append(assignment)
                im2cluster.append(assignment[im2cluster[-1]])
            # The next level clusters these normalised centroids.
            points = F.normalize(level_centroids.to(device=device, dtype=torch.float32), dim=1)
            centroids.append(points)
        return HierarchicalClusteringResult(
            centroids=centroids, parents=parents, im2cluster=im2cluster)
