"""Flat k-means over a data set sharded across processes (torch.distributed).

Every rank holds only its shard of the points, each row tagged with its global position
(its ``sample_idx``). The round makes the same random draws as the single-process torch
back end (:mod:`.kmeans_torch`) from the same seed, on every rank: the training subset and
each restart's initial rows are positions in the whole data set, and a rank contributes the
rows it owns. Lloyd iterations assign locally (chunked, on the points' device, in float32
whatever the shard's dtype) and all-reduce per-cluster sums (float64), counts and the
objective, so every rank computes identical centroids, splits empty clusters identically
and keeps the same restart. No rank ever holds more than its own rows; the collectives
move ``[k, D]`` sums, ``[k]`` counts and, once per restart, ``[k, D]`` initial rows.

Without an initialised process group (or with one process) the collectives are no-ops and
this is a single-process chunked k-means.
"""
from typing import List, NamedTuple, Optional, Tuple

import torch
from mmengine import dist
from mmengine.logging import print_log
from torch import Tensor

from .kmeans_torch import (centroid_sums, check_precision, chunk_elements_for, draw_init_rows,
                           draw_training_subset, nearest_centroid, split_empty_clusters)


class ShardedKMeansResult(NamedTuple):
    """What :func:`sharded_kmeans` returns.

    Attributes:
        centroids (Tensor): ``[k, D]`` float32, identical on every rank.
        assignment (Tensor): ``[n_rank]`` int64 nearest centroid of this rank's rows.
        objectives (list[float]): Global objective (sum of squared distances at the last
            assignment step) of every restart, in order.
        num_split (int): Empty clusters re-seeded by splitting, over all restarts.
    """
    centroids: Tensor
    assignment: Tensor
    objectives: List[float]
    num_split: int


def _rows_per_chunk(k: int, dim: int, chunk_elements: int) -> int:
    """Rows of one local chunk: its ``[rows, k]`` distances and float copies stay bounded."""
    return max(1, chunk_elements // max(k, dim))


def slots_of(positions: Tensor, wanted: Tensor) -> Tensor:
    """For every local position, its index in ``wanted`` (distinct positions), else -1.

    By binary search in the sorted ``wanted``: memory grows with the shard and ``wanted``,
    never with the whole data set.
    """
    if wanted.numel() == 0:
        return torch.full_like(positions, -1)
    wanted = wanted.to(positions.device)
    order = torch.argsort(wanted)
    sorted_wanted = wanted[order]
    at = torch.searchsorted(sorted_wanted, positions).clamp_max(wanted.numel() - 1)
    return torch.where(sorted_wanted[at] == positions, order[at], torch.full_like(positions, -1))


def _owned_rows(rows: Tensor, positions: Tensor, wanted: Tensor, dim: int) -> Tensor:
    """``[len(wanted), D]`` rows at global ``wanted`` positions, assembled on every rank.

    Each rank fills the rows it owns (``rows[i]`` sits at ``positions[i]``) into zeros and
    the sum over ranks completes the tensor: every position is owned by exactly one rank.
    """
    local_slot = slots_of(positions, wanted)
    owned = local_slot >= 0
    out = torch.zeros(wanted.numel(), dim, dtype=torch.float32, device=rows.device)
    out[local_slot[owned]] = rows[owned].to(torch.float32)
    dist.all_reduce(out)
    return out


def _assign_and_sum(x: Tensor, centroids: Tensor, chunk_elements: int,
                    precision: str) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """Local step: nearest centroid of every row, chunked, with float64 running sums.

    Returns:
        tuple: ``[n]`` int64 assignment, ``[k]`` int64 counts, ``[k, D]`` float64 sums
        and the float64 sum of squared distances, all of this rank's rows.
    """
    k, dim = centroids.shape
    assignment = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    counts = torch.zeros(k, dtype=torch.long, device=x.device)
    sums = torch.zeros(k, dim, dtype=torch.float64, device=x.device)
    objective = torch.zeros((), dtype=torch.float64, device=x.device)
    rows = _rows_per_chunk(k, dim, chunk_elements)
    for start in range(0, x.shape[0], rows):
        block = x[start:start + rows].to(torch.float32)  # fp16 / bf16 banks: fp32 maths
        idx, sq_dists = nearest_centroid(block, centroids, chunk_elements=chunk_elements,
                                         precision=precision)
        assignment[start:start + rows] = idx
        block_counts = torch.bincount(idx, minlength=k)
        counts += block_counts
        # float32 within a chunk (as the single-process back end), float64 across chunks
        # and ranks, without a float64 copy of the chunk.
        sums += centroid_sums(block, idx, block_counts)
        objective += sq_dists.double().sum()
    return assignment, counts, sums, objective


def _lloyd(train: Tensor, init: Tensor, num_iters: int, chunk_elements: int,
           precision: str) -> Tuple[Tensor, float, int]:
    """Lloyd iterations over the sharded training rows; identical results on every rank.

    The objective and split count stay on the device until the restart ends.
    """
    centroids, objective = init.clone(), None
    num_split = torch.zeros((), dtype=torch.long, device=init.device)
    for _ in range(num_iters):
        _, counts, sums, objective = _assign_and_sum(train, centroids, chunk_elements,
                                                     precision)
        for tensor in (counts, sums, objective):
            dist.all_reduce(tensor)
        centroids = (sums / counts.clamp_min(1).unsqueeze(1).to(sums.dtype)).to(torch.float32)
        num_split += split_empty_clusters(centroids, counts)
    return centroids, float('inf') if objective is None else float(objective), int(num_split)


def nearest_centroid_chunked(x: Tensor, centroids: Tensor,
                             chunk_elements: Optional[int] = None,
                             precision: str = 'fp32') -> Tensor:
    """Nearest centroid of every row of a (possibly half-precision) shard, in float32 chunks.

    Args:
        x (Tensor): ``[n, D]`` points, any float dtype.
        centroids (Tensor): ``[k, D]`` float32 centroids on ``x``'s device.
        chunk_elements (int, optional): Largest number of entries of one ``[rows, k]``
            block; by default sized for the device.
        precision (str): Of the distance product. Defaults to ``'fp32'``.

    Returns:
        Tensor: ``[n]`` int64 assignment.
    """
    chunk_elements = chunk_elements or chunk_elements_for(x.device)
    assignment = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    rows = _rows_per_chunk(*centroids.shape, chunk_elements)
    for start in range(0, x.shape[0], rows):
        block = x[start:start + rows].to(torch.float32)
        assignment[start:start + rows] = nearest_centroid(
            block, centroids, chunk_elements=chunk_elements, precision=precision)[0]
    return assignment


def sharded_kmeans(x: Tensor,
                   positions: Tensor,
                   num_points: int,
                   k: int,
                   num_iters: int = 20,
                   num_redo: int = 5,
                   seed: int = 0,
                   max_points_per_centroid: int = 1000,
                   init: Optional[Tensor] = None,
                   verbose: bool = False,
                   chunk_elements: Optional[int] = None,
                   precision: str = 'fp32') -> ShardedKMeansResult:
    """Cluster a data set whose rows are spread over the ranks into ``k`` clusters.

    Args:
        x (Tensor): ``[n_rank, D]`` this rank's rows (any float dtype, any device).
        positions (Tensor): ``[n_rank]`` int64 global position of each row in ``0..N-1``
            (every position held by exactly one rank; the caller checks it).
        num_points (int): ``N``, the rows over all ranks.
        k (int): Number of clusters, ``1 <= k <= N``.
        num_iters (int): Lloyd iterations per restart.
        num_redo (int): Restarts; the lowest global objective wins.
        seed (int): Seed of the subsampling and the initialisations (same on all ranks).
        max_points_per_centroid (int): Train on a random subset of
            ``k * max_points_per_centroid`` rows when ``N`` is larger.
        init (Tensor, optional): ``[k, D]`` centroids for restart 0 (a warm start),
            identical on every rank.
        verbose (bool): Log every restart's objective.
        chunk_elements (int, optional): Largest ``[rows, k]`` distance block; by default
            sized for the device (from the free memory on CUDA).
        precision (str): Of the distance products: ``'fp32'``, ``'tf32'`` or ``'bf16'``
            (float32 accumulation). Defaults to ``'fp32'``.

    Returns:
        ShardedKMeansResult: Centroids (identical on every rank), this rank's assignment,
        the objective of every restart and the number of empty-cluster splits.
    """
    x = x.detach()
    check_precision(precision)
    chunk_elements = chunk_elements or chunk_elements_for(x.device)
    positions = positions.to(device=x.device, dtype=torch.long)
    if not 1 <= k <= num_points:
        raise ValueError(f'k-means needs 1 <= k <= number of points, got k={k}, '
                         f'N={num_points}.')
    dim = x.shape[1]
    if k == num_points:  # every point is its own centroid, as the other back ends do
        centroids = _owned_rows(x, positions, torch.arange(num_points), dim)
        return ShardedKMeansResult(
            centroids, nearest_centroid_chunked(x, centroids, chunk_elements), [0.0], 0)

    generator = torch.Generator(device='cpu').manual_seed(seed)
    subset = draw_training_subset(num_points, k, max_points_per_centroid, generator)
    if subset is None:
        train, train_positions, num_train = x, positions, num_points
    else:  # this rank's rows of the subset, with their positions in the subset
        local = slots_of(positions, subset)
        keep = local >= 0
        train, train_positions, num_train = x[keep], local[keep], subset.numel()

    best, best_objective, objectives, num_split = None, float('inf'), [], 0
    for redo in range(num_redo):
        if redo == 0 and init is not None:
            start = init.detach().to(device=x.device, dtype=torch.float32)
        else:
            start = _owned_rows(train, train_positions,
                                draw_init_rows(num_train, k, generator), dim)
        centroids, objective, splits = _lloyd(train, start, num_iters, chunk_elements,
                                              precision)
        objectives.append(objective)
        num_split += splits
        if verbose:
            print_log(f'sharded k-means (N={num_train}, k={k}) restart {redo}: objective '
                      f'{objective:.6g}, {splits} empty-cluster splits', logger='current')
        if best is None or objective < best_objective:
            best, best_objective = centroids, objective
    return ShardedKMeansResult(
        best, nearest_centroid_chunked(x, best, chunk_elements, precision), objectives,
        num_split)
