"""What one process of the ``kmeans-sharded`` section runs (a ``--worker`` subprocess).

``kmeans-single``: one process builds the whole bank and runs ``HierarchicalKMeans`` with
one back end (faiss or torch). ``kmeans-sharded``: one rank of a ``torch.distributed.run``
launch builds only its shard and runs the sharded back end with the other ranks. Both
print one JSON line: wall time of the clustering, peak memory of building the bank and
clustering it (this process), the level-0 objective over all N points, and the level-0
assignment written to ``--kmeans-out`` (by rank 0) for the agreement column.
"""
import argparse
import json
import os
import time
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .measure import WORKER_TAG, _current_rss_bytes, _peak_rss_bytes, _reset_peak_rss

# Rows generated per seeded block: any rank can build any row without the whole bank.
BLOCK_ROWS = 4096


def bank_rows(num_points: int, dim: int, seed: int, rank: int, world: int,
              device: torch.device, dtype: torch.dtype = torch.float32) -> Tuple[Tensor, Tensor]:
    """Rows ``rank, rank + world, ...`` of a random L2-normalised bank, and their indices.

    Rows come from seeded blocks, so the shards of any world size are slices of the same
    bank; only one block is held beyond this rank's rows.
    """
    parts, indices = [], []
    for block, start in enumerate(range(0, num_points, BLOCK_ROWS)):
        rows = min(BLOCK_ROWS, num_points - start)
        gen = torch.Generator().manual_seed(seed * 1_000_003 + block)
        x = torch.randn(rows, dim, generator=gen)
        first = (rank - start) % world  # first row of this block that is this rank's
        keep = torch.arange(first, rows, world)
        x = x[keep]
        parts.append(x.div_(x.norm(dim=1, keepdim=True)).to(device=device, dtype=dtype))
        indices.append(keep + start)
    return torch.cat(parts), torch.cat(indices).to(device)


def partition_objective(x: Tensor, assignment: Tensor, k: int) -> float:
    """Sum of squared distances of the points to their cluster's mean (all ranks).

    The k-means objective of a partition, computed the same way for every back end:
    ``sum |x|^2 - sum_k |s_k|^2 / n_k`` with per-cluster sums ``s_k`` and sizes ``n_k``.
    """
    from mmengine import dist
    x = x.double()
    counts = torch.bincount(assignment, minlength=k).double()
    sums = x.new_zeros(k, x.shape[1]).index_add_(0, assignment, x)
    total = (x * x).sum().reshape(1)
    for tensor in (counts, sums, total):
        dist.all_reduce(tensor)
    return float(total - ((sums * sums).sum(1) / counts.clamp_min(1)).sum())


def _clusterer(args: argparse.Namespace, backend: str, clusters: Optional[List[int]] = None,
               **kwargs):
    from hirl_mm.clustering import HierarchicalKMeans
    return HierarchicalKMeans(clusters or args.kmeans_clusters, backend=backend,
                              num_iters=args.kmeans_iters, num_redo=args.kmeans_redo,
                              seed=args.seed, **kwargs)


def _measure(build, run, warmup) -> Tuple[object, Tensor, Tensor, float, float, int]:
    """Build the bank and run the clustering; peak RSS / CUDA memory of both together.

    ``warmup()`` first clusters a tiny bank the same way, so that one-off costs (imports,
    thread pools, kernels) are charged to neither the time nor the memory.

    Returns:
        tuple: ``(result, bank rows, their indices, wall seconds, CPU seconds of this
        process, peak bytes)``.
    """
    from .measure import synchronize
    warmup()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    _reset_peak_rss()
    base = _current_rss_bytes()
    x, idx = build()
    device = x.device
    synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    result = run(x, idx)
    synchronize(device)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = (torch.cuda.max_memory_allocated() if device.type == 'cuda'
            else _peak_rss_bytes() - base)
    return result, x, idx, seconds, cpu_seconds, peak


def _report(extra: Dict, seconds: float, cpu_seconds: float, peak: int, objective: float,
            warm: Optional[List[Dict]] = None) -> None:
    print(WORKER_TAG + json.dumps(dict(extra, seconds=seconds, cpu_seconds=cpu_seconds,
                                       peak_bytes=peak, objective=objective, warm=warm)),
          flush=True)


def _tiny_bank(args: argparse.Namespace, rank: int, world: int,
               device: torch.device) -> Tuple[Tensor, Tensor]:
    """The warm-up bank: 64 rows, clustered into 4 and 2 clusters."""
    return bank_rows(64, args.kmeans_dim, args.seed + 7, rank, world, device)


def run_single(args: argparse.Namespace) -> None:
    """One process, the whole bank, one back end (``--kmeans-backend``)."""
    device = torch.device(args.device)
    n, d = args.kmeans_points, args.kmeans_dim
    result, x, _, seconds, cpu_seconds, peak = _measure(
        lambda: bank_rows(n, d, args.seed, 0, 1, device),
        lambda x, idx: _clusterer(args, args.kmeans_backend)(x),
        lambda: _clusterer(args, args.kmeans_backend, clusters=[4, 2])(
            _tiny_bank(args, 0, 1, device)[0]))
    assignment = result.im2cluster[0]
    objective = partition_objective(x, assignment, args.kmeans_clusters[0])
    if args.kmeans_out:
        torch.save(assignment.cpu(), args.kmeans_out)
    warm = warm_start_rounds(args, x, result) if args.kmeans_warm else None
    _report(dict(ranks=1, threads=torch.get_num_threads(), bank_bytes=x.numel() * 4),
            seconds, cpu_seconds, peak, objective, warm)


def warm_start_rounds(args: argparse.Namespace, x: Tensor, first) -> List[Dict]:
    """The next round on drifted features: cold (``--kmeans-redo`` restarts) vs warm."""
    gen = torch.Generator().manual_seed(args.seed + 1)
    drifted = x + args.kmeans_drift * torch.randn(x.shape, generator=gen).to(x.device)
    drifted = drifted.div_(drifted.norm(dim=1, keepdim=True))
    rows = []
    for name, kwargs in (('cold', {}), ('warm', dict(warm_start=True,
                                                      warm_start_num_redo=args.warm_redo))):
        clusterer = _clusterer(args, args.kmeans_backend, **kwargs)
        start, cpu_start = time.perf_counter(), time.process_time()
        result = clusterer(drifted, previous=first)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        objective = partition_objective(drifted, result.im2cluster[0], args.kmeans_clusters[0])
        rows.append(dict(name=name, seconds=seconds, cpu_seconds=cpu_seconds, objective=objective,
                         redo=args.warm_redo if kwargs else args.kmeans_redo))
    return rows


def run_sharded(args: argparse.Namespace) -> None:
    """One rank of a ``torch.distributed.run`` launch: its shard only, sharded back end."""
    import torch.distributed as torch_dist
    from mmengine import dist
    device = torch.device(args.device)
    if device.type == 'cuda':
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
        device = torch.device('cuda', torch.cuda.current_device())
    torch_dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    n, d = args.kmeans_points, args.kmeans_dim
    dist.barrier()
    result, x, idx, seconds, cpu_seconds, peak = _measure(
        lambda: bank_rows(n, d, args.seed, rank, world, device),
        lambda x, idx: _clusterer(args, 'torch', distributed=True).cluster_shard(x, idx, n),
        lambda: _clusterer(args, 'torch', distributed=True, clusters=[4, 2]).cluster_shard(
            *_tiny_bank(args, rank, world, device), 64))
    # The shard's own rows, by sample_idx, for the objective over all N points.
    objective = partition_objective(x, result.im2cluster[0][idx], args.kmeans_clusters[0])
    seconds = max(float(s) for s in dist.all_gather_object(seconds))
    cpu_seconds = sum(float(s) for s in dist.all_gather_object(cpu_seconds))
    peaks = dist.all_gather_object(peak)
    if rank == 0 and args.kmeans_out:
        torch.save(result.im2cluster[0].cpu(), args.kmeans_out)
    if rank == 0:
        _report(dict(ranks=world, threads=torch.get_num_threads(),
                     bank_bytes=x.numel() * 4, peaks=peaks), seconds, cpu_seconds,
                max(peaks), objective)
    torch_dist.destroy_process_group()
