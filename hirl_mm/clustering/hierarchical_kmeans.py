"""Bottom-up hierarchical k-means: the hierarchical prototypes of HIRL."""
import functools
import logging
import numbers
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from mmengine import dist
from mmengine.logging import print_log
from torch import Tensor

from hirl_mm.registry import CLUSTERERS
from .backends import BACKENDS, get_kmeans_fn, resolve_backend
from .hierarchical_kmeans_distributed import sharded_hierarchical_kmeans
from .kmeans_torch import check_precision
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
        distributed (bool, optional): How :meth:`cluster_shard` (the clustering hook's
            entry point) clusters: ``True``: the sharded torch.distributed back end (every
            rank keeps only its shard; no N x D gather); ``False``: gather the shards and
            run ``backend`` on one rank; ``None`` (default): sharded when the run has more
            than one process. ``__call__`` always clusters the features it is given.
        warm_start (bool): Start each level of a round from the previous round's centroids
            (when the caller passes them) with ``warm_start_num_redo`` restarts in all:
            the warm one and ``warm_start_num_redo - 1`` random ones.
        warm_start_num_redo (int): Restarts of a warm-started level.
        precision (str): Of the torch and sharded back ends' distance products:
            ``'fp32'`` (default), ``'tf32'`` (CUDA's TF32 tensor cores; float32 elsewhere)
            or ``'bf16'`` (bf16 inputs, float32 accumulation). Norms, sums and centroids
            stay float32. faiss ignores it.
    """

    def __init__(self,
                 num_clusters: Sequence[int],
                 backend: str = 'auto',
                 num_iters: int = 20,
                 num_redo: int = 5,
                 seed: int = 0,
                 max_points_per_centroid: int = 1000,
                 min_points_per_centroid: int = 10,
                 verbose: bool = False,
                 distributed: Optional[bool] = None,
                 warm_start: bool = False,
                 warm_start_num_redo: int = 1,
                 precision: str = 'fp32') -> None:
        self.num_clusters = _check_num_clusters(num_clusters)
        for name, value, low in (('num_iters', num_iters, 1), ('num_redo', num_redo, 1),
                                 ('max_points_per_centroid', max_points_per_centroid, 1),
                                 ('min_points_per_centroid', min_points_per_centroid, 0),
                                 ('warm_start_num_redo', warm_start_num_redo, 1)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) \
                    or value < low:
                raise ValueError(f'{name} must be an integer >= {low}, got {value!r}.')
        if backend not in BACKENDS:
            raise ValueError(f'backend must be one of {BACKENDS}, got {backend!r}.')
        for name, value in (('distributed', distributed), ('warm_start', warm_start)):
            if value is not None and not isinstance(value, bool):
                raise ValueError(f'{name} must be True, False' +
                                 (' or None (auto)' if name == 'distributed' else '') +
                                 f', got {value!r}.')
        # Resolve now so that a config asking for a missing faiss fails when it is built.
        self.backend = resolve_backend(backend)
        if backend == 'auto' and self.backend == 'torch':
            print_log('faiss is not installed: HierarchicalKMeans uses the pure-torch k-means '
                      '(pip install faiss-cpu or faiss-gpu for the reference back end).',
                      logger='current')
        self.precision = check_precision(precision)
        self._kmeans = get_kmeans_fn(self.backend)
        if self.backend == 'torch':
            self._kmeans = functools.partial(self._kmeans, precision=self.precision)
        self.num_iters = int(num_iters)
        self.num_redo = int(num_redo)
        self.seed = int(seed)
        self.max_points_per_centroid = int(max_points_per_centroid)
        self.min_points_per_centroid = int(min_points_per_centroid)
        self.verbose = verbose
        self.distributed = distributed
        self.warm_start = bool(warm_start)
        self.warm_start_num_redo = int(warm_start_num_redo)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_clusters={self.num_clusters}, '
                f'backend={self.backend!r}, num_iters={self.num_iters}, '
                f'num_redo={self.num_redo}, seed={self.seed}, '
                f'distributed={self.distributed}, warm_start={self.warm_start}, '
                f'precision={self.precision!r})')

    def uses_sharded(self) -> bool:
        """Whether :meth:`cluster_shard` runs the sharded back end in this run."""
        if self.distributed is None:
            return dist.get_world_size() > 1
        return self.distributed

    def _num_redo(self, warm: int) -> int:
        """Restarts of a level: ``warm_start_num_redo`` when warm started (``warm=1``)."""
        return self.warm_start_num_redo if warm else self.num_redo

    def _warm_init(self, previous: Optional[HierarchicalClusteringResult],
                   dim: int) -> List[Optional[Tensor]]:
        """Per level, the previous round's centroids to start from (None: cold start)."""
        if not self.warm_start or previous is None:
            return [None] * len(self.num_clusters)
        expected = [(k, dim) for k in self.num_clusters]
        shapes = [tuple(c.shape) for c in previous.centroids]
        if shapes != expected:
            raise ValueError(f'warm_start needs the previous round\'s centroids of shapes '
                             f'{expected}, got {shapes}; drop warm_start or pass the '
                             f'previous clustering of these prototypes.')
        return [c.detach().float() for c in previous.centroids]

    def cluster_shard(self, features: Tensor, sample_idx: Tensor, num_samples: int,
                      previous: Optional[HierarchicalClusteringResult] = None
                      ) -> HierarchicalClusteringResult:
        """Cluster a data set of which this rank holds ``features`` (sharded back end).

        Every rank calls it with its own rows; all return the same result. Use it when
        :meth:`uses_sharded` is true (else gather the features and call the object).

        Args:
            features (Tensor): ``[n_rank, D]`` this rank's rows (float32 / float16 /
                bfloat16; computed in float32).
            sample_idx (Tensor): ``[n_rank]`` their indices in ``0..N-1``.
            num_samples (int): ``N`` over all ranks.
            previous (HierarchicalClusteringResult, optional): The previous round, used
                when ``warm_start`` is set.

        Returns:
            HierarchicalClusteringResult: On ``features``' device, ``im2cluster`` over all
            ``N`` samples, identical on every rank.
        """
        if isinstance(features, np.ndarray):
            features = torch.from_numpy(features)
        init = self._warm_init(previous, features.shape[-1])
        if dist.is_main_process():  # level l > 0 clusters the K_{l-1} centroids
            for level, (n, k) in enumerate(zip([num_samples, *self.num_clusters],
                                               self.num_clusters)):
                self._warn_if_sparse(level, n, k)
        return sharded_hierarchical_kmeans(
            features, sample_idx, num_samples, self.num_clusters, self.num_iters,
            self._num_redo, self.seed, self.max_points_per_centroid, init, self.verbose,
            self.precision)

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

    def __call__(self, features: Tensor,
                 previous: Optional[HierarchicalClusteringResult] = None
                 ) -> HierarchicalClusteringResult:
        """Cluster ``features`` level by level.

        Args:
            features (Tensor): ``[N, D]`` finite points (typically L2-normalised image
                embeddings), on any device.
            previous (HierarchicalClusteringResult, optional): The previous round, used
                when ``warm_start`` is set.

        Returns:
            HierarchicalClusteringResult: Centroids, parents and per-point assignments of every
            level, on ``features``' device.

        Raises:
            ValueError: ``features`` is not 2-D, holds NaN/Inf, or has fewer than ``K_0`` rows.
        """
        features = _check_features(features, self.num_clusters)
        device = features.device
        init = self._warm_init(previous, features.shape[1])
        centroids: List[Tensor] = []
        parents: List[Tensor] = []
        im2cluster: List[Tensor] = []
        points = features
        for level, k in enumerate(self.num_clusters):
            self._warn_if_sparse(level, points.shape[0], k)
            # A warm start is passed only when there is one (back ends take it as init).
            warm = () if init[level] is None else (init[level], )
            level_centroids, assignment = self._kmeans(
                points, k, self.num_iters, self._num_redo(len(warm)), self.seed + level,
                self.max_points_per_centroid, self.min_points_per_centroid, self.verbose,
                *warm)
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
