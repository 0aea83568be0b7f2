"""Flat k-means in pure torch, on whatever device the points are (e.g. CUDA without faiss-gpu).

It follows faiss's recipe so that both back ends behave alike: train on a random subset of
at most ``k * max_points_per_centroid`` points, initialise each restart with ``k`` random
training points, run Lloyd iterations, repair empty clusters by splitting a large one, keep
the restart with the lowest objective, then assign every point to its nearest centroid.
All randomness comes from a CPU ``torch.Generator`` seeded with ``seed``.

On a GPU it runs at GPU speed: distance blocks are sized from the free GPU memory, the
distance product can run in TF32 or in bf16 with float32 accumulation (``precision``),
centroids are updated by ``index_add_`` and nothing is read back to the host within a
restart (the objective and the empty-cluster repair stay on the device). ``index_add_``
adds with atomics on CUDA, so two runs may differ in the last bits of a sum; with
``torch.use_deterministic_algorithms(True)`` (mmengine's ``randomness.deterministic``)
sums are taken segment by segment instead, and a seed gives the same result on every run.
"""
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

import torch
from mmengine.logging import print_log
from torch import Tensor

# Relative perturbation of a split centroid (the value faiss uses).
SPLIT_EPS = 1.0 / 1024.0
# Elements of one [rows, k] distance block: bounds memory to ~64 MB whatever n and k are.
CHUNK_ELEMENTS = 1 << 24
# Precisions of the distance product: float32, TF32 (CUDA; float32 elsewhere), or bf16
# inputs with float32 accumulation and output.
PRECISIONS = ('fp32', 'tf32', 'bf16')
# Share of the free GPU memory one distance block may take (with its temporaries).
GPU_MEMORY_SHARE = 0.25


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a ValueError naming them."""
    if precision not in PRECISIONS:
        raise ValueError(f'precision must be one of {PRECISIONS}, got {precision!r}.')
    return precision


def chunk_elements_for(device: torch.device) -> int:
    """Entries of one ``[rows, k]`` distance block on ``device``.

    On CUDA a quarter of the free memory, at 12 bytes an entry (the float32 scores and the
    min / argmin temporaries), at least :data:`CHUNK_ELEMENTS`; elsewhere
    :data:`CHUNK_ELEMENTS` (CPU caches favour small blocks).
    """
    if device.type != 'cuda':
        return CHUNK_ELEMENTS
    free, _ = torch.cuda.mem_get_info(device)
    return max(CHUNK_ELEMENTS, min(int(free * GPU_MEMORY_SHARE) // 12, (1 << 31) - 1))


@contextmanager
def _tf32(enabled: bool) -> Iterator[None]:
    """CUDA matmuls in TF32 inside the block (restored afterwards)."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def _neg2_dot_plus(sq_norms: Tensor, block: Tensor, centroids_t: Tensor,
                   precision: str) -> Tensor:
    """``sq_norms - 2 block @ centroids_t`` in float32, the product in ``precision``."""
    if precision == 'bf16':
        lhs = block.to(torch.bfloat16)
        if block.is_cuda:  # bf16 inputs, float32 accumulation and output
            dot = torch.mm(lhs, centroids_t, out_dtype=torch.float32)
        else:
            dot = torch.mm(lhs, centroids_t).float()
        return dot.mul_(-2).add_(sq_norms)
    with _tf32(precision == 'tf32' and block.is_cuda):
        return torch.addmm(sq_norms, block, centroids_t, beta=1, alpha=-2)


def nearest_centroid(x: Tensor,
                     centroids: Tensor,
                     x_sq_norms: Optional[Tensor] = None,
                     chunk_elements: Optional[int] = None,
                     precision: str = 'fp32') -> Tuple[Tensor, Tensor]:
    """Nearest centroid (squared L2) of every point, by chunked matrix products.

    Args:
        x (Tensor): ``[n, D]`` float32 points.
        centroids (Tensor): ``[k, D]`` float32 centroids on ``x``'s device.
        x_sq_norms (Tensor, optional): ``[n]`` squared norms of ``x``, to reuse across
            iterations; computed when not given.
        chunk_elements (int, optional): Largest number of entries of one ``[rows, k]``
            block; by default :func:`chunk_elements_for` the device.
        precision (str): Of the distance product, one of :data:`PRECISIONS`; norms,
            scores and distances are float32 whatever it is. Defaults to ``'fp32'``.

    Returns:
        tuple[Tensor, Tensor]: ``[n]`` int64 index of the nearest centroid (the lowest index
        on ties) and ``[n]`` float32 squared distance to it.
    """
    n, k = x.shape[0], centroids.shape[0]
    sq_norms = (centroids * centroids).sum(dim=1)
    if x_sq_norms is None:
        x_sq_norms = (x * x).sum(dim=1)
    assignment = torch.empty(n, dtype=torch.long, device=x.device)
    sq_dists = torch.empty(n, dtype=torch.float32, device=x.device)
    rows = max(1, (chunk_elements or chunk_elements_for(x.device)) // k)
    centroids_t = centroids.t()
    if check_precision(precision) == 'bf16':
        centroids_t = centroids_t.to(torch.bfloat16)
    for start in range(0, n, rows):
        block = x[start:start + rows]
        # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 does not change the argmin.
        scores = _neg2_dot_plus(sq_norms, block, centroids_t, precision)
        best, idx = scores.min(dim=1)
        assignment[start:start + rows] = idx
        sq_dists[start:start + rows] = (best + x_sq_norms[start:start + rows]).clamp_min_(0)
    return assignment, sq_dists


def centroid_sums(x: Tensor, assignment: Tensor, counts: Tensor,
                  sorted_segments: Optional[bool] = None) -> Tensor:
    """Sum of the points of every cluster.

    By ``index_add_`` (sequential, hence deterministic, on CPU; with atomics on CUDA, so
    the last bits of a sum may differ between runs); when torch's deterministic
    algorithms are on, on CUDA the points are sorted by cluster and summed segment by
    segment instead.

    Args:
        x (Tensor): ``[n, D]`` float32 points.
        assignment (Tensor): ``[n]`` int64 cluster of every point.
        counts (Tensor): ``[k]`` int64 cluster sizes (``bincount`` of ``assignment``).
        sorted_segments (bool, optional): Force the sorted-segment (True) or ``index_add_``
            (False) path; by default sorted segments on CUDA with deterministic
            algorithms only.

    Returns:
        Tensor: ``[k, D]`` sums (zero rows for empty clusters).
    """
    if sorted_segments is None:
        sorted_segments = x.is_cuda and torch.are_deterministic_algorithms_enabled()
    if sorted_segments:
        order = torch.argsort(assignment, stable=True)
        return torch.segment_reduce(x[order], 'sum', lengths=counts, axis=0, unsafe=True)
    sums = x.new_zeros(counts.shape[0], x.shape[1])
    return sums.index_add_(0, assignment, x)


def split_empty_clusters(centroids: Tensor, counts: Tensor) -> Tensor:
    """Give every empty cluster half of a large cluster, in place (faiss-style).

    An empty cluster takes a copy of the centroid of one of the largest clusters; the two
    copies are pushed apart by a small symmetric perturbation (``1 +/- SPLIT_EPS`` with
    alternating signs across dimensions) and the donor's count is shared between them.
    Done in rounds so it stays vectorised: each round pairs the empty clusters (in index
    order) with the largest clusters of at least 2 points; the number of non-empty
    clusters about doubles per round. The rounds have fixed shapes (pairs that do not
    exist write to a scratch row), so nothing is read back to the host: ``k.bit_length()``
    rounds run, enough to fill ``k`` clusters from one; a cluster still empty after them
    (only with a pathological size distribution) is split at the next iteration.

    Args:
        centroids (Tensor): ``[k, D]`` centroids; empty clusters' rows may hold anything.
        counts (Tensor): ``[k]`` int64 cluster sizes; updated to the shared-out sizes.

    Returns:
        Tensor: 0-d int64, the number of clusters that were split (on the device).
    """
    k, dim = centroids.shape
    device = centroids.device
    signs = torch.ones(dim, device=device)
    signs[1::2] = -1
    grow, shrink = 1 + SPLIT_EPS * signs, 1 - SPLIT_EPS * signs
    positions = torch.arange(k, device=device)
    scratch_c = torch.cat([centroids, centroids.new_zeros(1, dim)])
    scratch_n = torch.cat([counts, counts.new_zeros(1)])
    num_split = torch.zeros((), dtype=torch.long, device=device)
    for _ in range(k.bit_length()):
        current = scratch_n[:k]
        is_empty = current == 0
        empty = torch.argsort((~is_empty).to(torch.int8), stable=True)  # empties first
        sizes, donors = torch.sort(current, descending=True, stable=True)
        pair = (positions < is_empty.sum()) & (positions < (sizes >= 2).sum())
        empty = torch.where(pair, empty, k)  # absent pairs write the scratch row k
        donors = torch.where(pair, donors, k)
        donor_centroids = scratch_c[donors]
        half = scratch_n[donors] // 2
        scratch_c[empty] = donor_centroids * grow
        scratch_c[donors] = donor_centroids * shrink
        scratch_n[empty] = half
        scratch_n[donors] -= half
        num_split += pair.sum()
    centroids.copy_(scratch_c[:k])
    counts.copy_(scratch_n[:k])
    return num_split


def draw_training_subset(num_points: int, k: int, max_points_per_centroid: int,
                         generator: torch.Generator) -> Optional[Tensor]:
    """Positions of the training subset (``None``: train on every point).

    The first draw of a k-means round; the distributed back end makes the same draws so
    that both back ends train on the same points from the same seed.

    Args:
        num_points (int): ``n``, the points to cluster.
        k (int): Number of clusters.
        max_points_per_centroid (int): Train on at most ``k * max_points_per_centroid``.
        generator (torch.Generator): The round's CPU generator.

    Returns:
        Tensor | None: ``[k * max_points_per_centroid]`` int64 positions (CPU), or None.
    """
    if num_points <= k * max_points_per_centroid:
        return None
    return torch.randperm(num_points, generator=generator)[:k * max_points_per_centroid]


def draw_init_rows(num_train: int, k: int, generator: torch.Generator) -> Tensor:
    """Positions (in the training set) of a restart's ``k`` initial centroids (CPU int64)."""
    return torch.randperm(num_train, generator=generator)[:k]


def _lloyd(train: Tensor, train_sq_norms: Tensor, init: Tensor, num_iters: int,
           chunk_elements: int, precision: str) -> Tuple[Tensor, float, int]:
    """Lloyd iterations from ``init``; returns centroids, the last objective, #splits.

    The objective and the split count stay on the device until the restart ends.
    """
    centroids = init.clone()
    k = centroids.shape[0]
    objective = torch.full((), float('inf'), dtype=torch.float64, device=train.device)
    num_split = torch.zeros((), dtype=torch.long, device=train.device)
    for _ in range(num_iters):
        assignment, sq_dists = nearest_centroid(train, centroids, train_sq_norms,
                                                chunk_elements, precision)
        # As in faiss: the objective of the last assignment step ranks the restarts.
        objective = sq_dists.double().sum()
        counts = torch.bincount(assignment, minlength=k)
        sums = centroid_sums(train, assignment, counts)
        centroids = sums / counts.clamp_min(1).unsqueeze(1).to(sums.dtype)
        num_split += split_empty_clusters(centroids, counts)
    return centroids, float(objective), int(num_split)


def kmeans(x: Tensor,
           k: int,
           num_iters: int = 20,
           num_redo: int = 5,
           seed: int = 0,
           max_points_per_centroid: int = 1000,
           min_points_per_centroid: int = 10,
           verbose: bool = False,
           init: Optional[Tensor] = None,
           precision: str = 'fp32',
           chunk_elements: Optional[int] = None) -> Tuple[Tensor, Tensor]:
    """Cluster the rows of ``x`` into ``k`` clusters with pure torch.

    Args:
        x (Tensor): ``[n, D]`` finite points, any device and float dtype.
        k (int): Number of clusters, ``1 <= k <= n``.
        num_iters (int): Lloyd iterations per restart.
        num_redo (int): Restarts; the one with the lowest objective is kept.
        seed (int): Seed of the subsampling and the initialisations.
        max_points_per_centroid (int): Train on a random subset of
            ``k * max_points_per_centroid`` points when ``n`` is larger.
        min_points_per_centroid (int): Unused (the caller warns about too few points);
            kept so that every back end has the same signature.
        verbose (bool): Log the objective of every restart.
        init (Tensor, optional): ``[k, D]`` centroids to start restart 0 from (a warm
            start); the other restarts start from random training points.
        precision (str): Of the distance products (:data:`PRECISIONS`). Defaults to
            ``'fp32'``.
        chunk_elements (int, optional): Largest ``[rows, k]`` distance block; by default
            sized for the device (:func:`chunk_elements_for`).

    Returns:
        tuple[Tensor, Tensor]: ``[k, D]`` float32 centroids and ``[n]`` int64 nearest-centroid
        assignment of every point, both on ``x``'s device.
    """
    del min_points_per_centroid
    x = x.detach().to(torch.float32).contiguous()
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f'k-means needs 1 <= k <= number of points, got k={k}, n={n}.')
    chunk_elements = chunk_elements or chunk_elements_for(x.device)
    if k == n:  # every point is its own centroid (faiss does the same)
        centroids = x.clone()
        return centroids, nearest_centroid(x, centroids, None, chunk_elements)[0]

    generator = torch.Generator(device='cpu').manual_seed(seed)
    subset = draw_training_subset(n, k, max_points_per_centroid, generator)
    train = x if subset is None else x[subset.to(x.device)]

    train_sq_norms = (train * train).sum(dim=1)
    best_centroids, best_objective = None, float('inf')
    for redo in range(num_redo):
        if redo == 0 and init is not None:
            start = init.detach().to(device=x.device, dtype=torch.float32)
        else:
            start = train[draw_init_rows(train.shape[0], k, generator).to(x.device)]
        centroids, objective, num_split = _lloyd(train, train_sq_norms, start, num_iters,
                                                 chunk_elements, precision)
        if verbose:
            print_log(
                f'torch k-means (n={train.shape[0]}, k={k}) restart {redo}: objective '
                f'{objective:.6g}, {num_split} empty-cluster splits', logger='current')
        if best_centroids is None or objective < best_objective:
            best_centroids, best_objective = centroids, objective
    return best_centroids, nearest_centroid(x, best_centroids, None, chunk_elements,
                                            precision)[0]
