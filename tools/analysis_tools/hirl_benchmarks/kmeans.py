"""Sections ``kmeans`` and ``kmeans-by-dim``: bottom-up hierarchical k-means wall time.

``kmeans`` times each requested back end; ``kmeans-by-dim`` runs one clustering round at
each ``--embedding-dims`` width on the same number of random normalised features.
:func:`compare_kmeans_variants` runs the torch back end in each precision of its distance
products and faiss on the same features, against the float32 result (the GPU check's
ImageNet-size k-means).
"""
import argparse
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .kmeans_sharded_worker import partition_objective
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


def benchmark_kmeans(args: argparse.Namespace) -> Optional[List[Dict[str, Any]]]:
    """Time hierarchical k-means per back end on random normalised features.

    With ``--kmeans-precisions``, the torch back end runs once per precision and faiss
    (when among ``--kmeans-backends`` and importable) on the same features, against the
    first precision (:func:`compare_kmeans_variants`).

    Returns:
        List[Dict[str, Any]] | None: :func:`compare_kmeans_variants`'s rows with
        ``--kmeans-precisions``, else None (the table is printed).
    """
    from hirl_mm.clustering import HierarchicalKMeans
    from hirl_mm.clustering.backends import faiss_import_error
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    features = random_unit_rows(args.kmeans_points, args.kmeans_dim, device)
    print(f'== Hierarchical k-means on {args.device}: {args.kmeans_points} x '
          f'{args.kmeans_dim} random normalised features, K={args.kmeans_clusters}, '
          f'{args.kmeans_iters} iterations, {args.kmeans_redo} restart(s) ==')
    if args.kmeans_precisions:
        with_faiss = 'faiss' in args.kmeans_backends and faiss_import_error() is None
        rows = compare_kmeans_variants(features, args.kmeans_clusters, args.kmeans_iters,
                                       args.kmeans_redo, args.seed, args.kmeans_precisions,
                                       with_faiss)
        print_kmeans_variants(rows)
        return rows
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
    return None


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


# The warm-up clustering of each variant: a slice of the features into this hierarchy.
WARMUP_ROWS, WARMUP_CLUSTERS = 4096, [16, 4, 2]


def compare_kmeans_variants(features: Tensor, num_clusters: Sequence[int], num_iters: int,
                            num_redo: int, seed: int,
                            precisions: Sequence[str] = ('fp32', 'tf32', 'bf16'),
                            with_faiss: bool = True) -> List[Dict[str, Any]]:
    """Hierarchical k-means of the same features by every variant, against the first.

    The torch back end runs once per precision of its distance products, then faiss (when
    ``with_faiss``). Each variant first clusters a slice of the features (one-off costs:
    CUDA handles, kernels, faiss's GPU resources are not timed); the timed run is
    synchronised on CUDA. The reference is the first torch precision's result (float32 by
    default): the torch variants draw the same subsets and initial centroids from the seed,
    so their level-0 assignments are compared; faiss draws its own (no agreement).

    Args:
        features (Tensor): ``[N, D]`` normalised rows, on the device to cluster on.
        num_clusters (Sequence[int]): ``K_l`` per level, finest first.
        num_iters (int): Lloyd iterations per restart.
        num_redo (int): Restarts per level.
        seed (int): Seed of level 0.
        precisions (Sequence[str]): Precisions of the torch back end, the reference first.
        with_faiss (bool): Also run faiss (on the GPU when faiss has one).

    Returns:
        List[Dict[str, Any]]: Per variant ``name``, ``seconds``, ``objective`` (level-0 sum
        of squared distances to the cluster means), ``objective_vs_reference`` (relative
        difference), ``agreement`` (share of level-0 assignments equal to the reference's;
        None for faiss) and ``non_empty`` clusters per level.
    """
    from hirl_mm.clustering import HierarchicalKMeans
    variants = [(f'torch {p}', dict(backend='torch', precision=p)) for p in precisions]
    if with_faiss:
        variants.append(('faiss', dict(backend='faiss')))
    warmup_rows = features[:min(WARMUP_ROWS, features.shape[0])]
    rows: List[Dict[str, Any]] = []
    reference: Optional[Tensor] = None
    for name, kwargs in variants:
        settings = dict(num_iters=num_iters, num_redo=num_redo, seed=seed, **kwargs)
        HierarchicalKMeans([min(k, warmup_rows.shape[0]) for k in WARMUP_CLUSTERS],
                           **settings)(warmup_rows)
        kmeans = HierarchicalKMeans(list(num_clusters), **settings)
        result, seconds = timed(lambda: kmeans(features), features.device)
        assignment = result.im2cluster[0]
        objective = partition_objective(features, assignment, num_clusters[0])
        row = dict(name=name, seconds=seconds, objective=objective,
                   non_empty=[int((result.cluster_sizes(l) > 0).sum())
                              for l in range(result.num_levels)], agreement=None)
        if reference is None:
            reference, reference_objective = assignment, objective
        elif kwargs['backend'] == 'torch':
            row['agreement'] = float((assignment == reference).double().mean())
        row['objective_vs_reference'] = objective / reference_objective - 1
        rows.append(row)
        del result, assignment
    return rows


def print_kmeans_variants(rows: List[Dict[str, Any]]) -> None:
    """The table of :func:`compare_kmeans_variants`'s rows."""
    print_header(f'{"variant":<12} {"wall time":>10} {"objective":>14} {"vs first":>9} '
                 f'{"agreement":>10}  non-empty clusters per level', 6)
    for r in rows:
        agreement = 'n/a' if r['agreement'] is None else f'{r["agreement"] * 100:.2f} %'
        print(f'{r["name"]:<12} {r["seconds"]:>8.2f} s {r["objective"]:>14.2f} '
              f'{r["objective_vs_reference"] * 100:>+8.3f}% {agreement:>10}  {r["non_empty"]}')
