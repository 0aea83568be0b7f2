"""Sections ``kmeans`` and ``kmeans-by-dim``: bottom-up hierarchical k-means wall time.

``kmeans`` times each requested back end; ``kmeans-by-dim`` runs one clustering round at
each ``--embedding-dims`` width on the same number of random normalised features.
"""
import argparse
from typing import Any, Callable, Dict, List, Tuple

import torch
from torch import Tensor

from .measure import timed
from .report import embedding_name, mib, print_header
from .synthetic import random_unit_rows


def time_kmeans(kmeans: Callable[[Tensor], Any], features: Tensor,
                device: torch.device) -> Tuple[float, List[int]]:
    """Run ``kmeans(features)`` once.

    Args:
        kmeans (Callable): The clustering (a ``HierarchicalKMeans``).
        features (Tensor): ``[N, D]`` normalised features.
        device (torch.device): Where they live (synchronised around the call on CUDA).

    Returns:
        tuple: ``(wall seconds, non-empty clusters per level)``.
    """
    result, elapsed = timed(lambda: kmeans(features), device)
    non_empty = [int((result.cluster_sizes(l) > 0).sum()) for l in range(result.num_levels)]
    return elapsed, non_empty


def benchmark_kmeans(args: argparse.Namespace) -> None:
    """Time hierarchical k-means per back end on random normalised features."""
    from hirl_mm.clustering import HierarchicalKMeans
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    features = random_unit_rows(args.kmeans_points, args.kmeans_dim, device)
    print(f'== Hierarchical k-means on {args.device}: {args.kmeans_points} x '
          f'{args.kmeans_dim} random normalised features, K={args.kmeans_clusters}, '
          f'{args.kmeans_iters} iterations, {args.kmeans_redo} restart(s) ==')
    print_header(f'{"backend":<8} {"wall time":>10}  non-empty clusters per level', 6)
    for backend in args.kmeans_backends:
        try:
            kmeans = HierarchicalKMeans(num_clusters=args.kmeans_clusters, backend=backend,
                                        num_iters=args.kmeans_iters,
                                        num_redo=args.kmeans_redo, seed=args.seed)
        except ImportError as err:
            print(f'{backend:<8} {"skipped":>10}  ({err.__class__.__name__}: '
                  f'{str(err).splitlines()[0][:80]})')
            continue
        elapsed, non_empty = time_kmeans(kmeans, features, device)
        print(f'{backend:<8} {elapsed:>8.2f} s  {non_empty}')


def benchmark_kmeans_by_dim(args: argparse.Namespace) -> Dict[int, Dict]:
    """One hierarchical k-means round per embedding width on random normalised features;
    prints a table.

    Returns:
        Dict[int, Dict]: ``{D: dict(seconds=..., backend=..., non_empty=[...])}``.
    """
    from hirl_mm.clustering import HierarchicalKMeans, resolve_backend
    device = torch.device(args.device)
    n, ks = args.kmeans_by_dim_points, args.kmeans_by_dim_clusters
    backend = resolve_backend(args.kmeans_by_dim_backend)
    print(f'== Hierarchical k-means per embedding width on {args.device}: one clustering '
          f'round of {n} random L2-normalised features, K={ks}, backend {backend}, '
          f'{args.kmeans_by_dim_iters} iterations, {args.kmeans_by_dim_redo} restart(s) per '
          f'level (reduced; the HIRL configs use 5) ==')
    print_header(f'{"D":>5} {"features":>12} {"wall time":>10}  non-empty per level  '
                 f'embedding', 30)
    results = {}
    for d in args.embedding_dims:
        torch.manual_seed(args.seed)
        features = random_unit_rows(n, d, device)
        kmeans = HierarchicalKMeans(num_clusters=ks, backend=backend,
                                    num_iters=args.kmeans_by_dim_iters,
                                    num_redo=args.kmeans_by_dim_redo, seed=args.seed)
        elapsed, non_empty = time_kmeans(kmeans, features, device)
        results[d] = dict(seconds=elapsed, backend=backend, non_empty=non_empty)
        print(f'{d:>5} {mib(features.numel() * 4):>12} {elapsed:>8.2f} s  '
              f'{str(non_empty):<19}  {embedding_name(d)}', flush=True)
        del features
    if len(results) >= 2:
        lo, hi = min(results), max(results)
        print(f'ratio D={hi} / D={lo}: time '
              f'{results[hi]["seconds"] / max(results[lo]["seconds"], 1e-9):.1f}x '
              f'(a Lloyd iteration costs ~N*K*D: {hi / lo:g}x)')
    return results
