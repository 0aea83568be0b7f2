"""Benchmark the two expensive parts of HIRL.

(a) Forward + backward of the semantic path loss: ``hirl_mm``'s implementation (one
    ``[N, K_l]`` matrix product per level, then gathers) against a naive formulation that
    gathers the centroids of every negative path into an ``[N, P, L, D]`` tensor. Each
    variant runs in a fresh subprocess so that its peak memory is measured in isolation:
    on CPU as the increase of the peak resident set size (``ru_maxrss``) over the resident
    size just before the call; on CUDA with ``torch.cuda.max_memory_allocated``.
(b) Wall time of bottom-up hierarchical k-means on random normalised features, for each
    requested back end.

Example::

    python tools/analysis_tools/benchmark_hirl.py --device cpu
    python tools/analysis_tools/benchmark_hirl.py --device cuda --skip-kmeans
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

WORKER_TAG = 'BENCHMARK_RESULT '


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command line arguments.

    Args:
        argv (Sequence[str], optional): Arguments; defaults to ``sys.argv[1:]``.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Benchmark the HIRL semantic path loss and hierarchical k-means.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--seed', type=int, default=0)
    loss = parser.add_argument_group('semantic path loss')
    loss.add_argument('--num-images', type=int, default=32, help='images per batch N')
    loss.add_argument('--num-neg-path', type=int, default=1000, help='negative paths P')
    loss.add_argument('--num-clusters', type=int, nargs='+', default=[30000, 10000, 1000],
                      help='clusters per level K_l, finest first')
    loss.add_argument('--dim', type=int, default=2048, help='embedding dimension D')
    loss.add_argument('--warmup', type=int, default=1, help='untimed runs before timing')
    loss.add_argument('--repeats', type=int, default=3, help='timed runs (median reported)')
    loss.add_argument('--memory-target', type=float, default=20.,
                      help='required peak memory ratio naive / ours')
    loss.add_argument('--time-target', type=float, default=5.,
                      help='required time ratio naive / ours')
    loss.add_argument('--skip-loss', action='store_true', help='skip the loss benchmark')
    km = parser.add_argument_group('hierarchical k-means')
    km.add_argument('--skip-kmeans', action='store_true', help='skip the k-means benchmark')
    km.add_argument('--kmeans-points', type=int, default=100000)
    km.add_argument('--kmeans-dim', type=int, default=128)
    km.add_argument('--kmeans-clusters', type=int, nargs='+', default=[1000, 300, 30])
    km.add_argument('--kmeans-backends', nargs='+', default=['faiss', 'torch'],
                    choices=['faiss', 'torch'],
                    help='back ends to time; unavailable ones are reported and skipped')
    km.add_argument('--kmeans-iters', type=int, default=20)
    km.add_argument('--kmeans-redo', type=int, default=5)
    parser.add_argument('--strict', action='store_true',
                        help='exit with status 1 if a target is missed')
    # Internal: run one loss variant and print its measurements (used by subprocesses).
    parser.add_argument('--worker', choices=['ours', 'naive'], help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------------------
# Loss variants
# ----------------------------------------------------------------------------------------
def naive_semantic_path_loss(embeddings: Sequence[Tensor], centroids: Sequence[Tensor],
                             pos_paths: Tensor, neg_paths: Tensor,
                             eps: float = 1e-6) -> Tensor:
    """The formula computed the naive way, materialising ``[N, P, L, D]`` centroids.

    Args:
        embeddings (Sequence[Tensor]): ``L`` normalised ``[N, D]`` embeddings.
        centroids (Sequence[Tensor]): ``L`` normalised ``[K_l, D]`` centroids.
        pos_paths (Tensor): ``[N, L]`` positive paths.
        neg_paths (Tensor): ``[N, P, L]`` negative paths.
        eps (float): Stabiliser inside the logarithms.

    Returns:
        Tensor: The scalar loss.
    """
    num_levels = len(centroids)
    z = torch.stack(list(embeddings), dim=1)  # [N, L, D]
    pos_c = torch.stack([centroids[l][pos_paths[:, l]] for l in range(num_levels)], dim=1)
    neg_c = torch.stack([centroids[l][neg_paths[:, :, l]] for l in range(num_levels)],
                        dim=2)  # [N, P, L, D]
    pos_sim = ((1 + (z * pos_c).sum(-1)) / 2).prod(-1)  # [N]
    neg_sim = ((1 + (z.unsqueeze(1) * neg_c).sum(-1)) / 2).prod(-1)  # [N, P]
    true_neg = (neg_paths != pos_paths.unsqueeze(1)).any(-1).to(z.dtype)
    loss_pos = -torch.log(pos_sim + eps)
    loss_neg = (-torch.log(1 - neg_sim + eps) * true_neg).sum(1) / (true_neg.sum(1) + eps)
    return ((loss_pos + loss_neg) / 2).mean()


def make_loss_inputs(num_images: int, num_neg_path: int, num_clusters: Sequence[int],
                     dim: int, device: torch.device,
                     seed: int) -> Tuple[List[Tensor], List[Tensor], Tensor, Tensor]:
    """Random normalised embeddings / centroids, a random hierarchy and its paths.

    Centroids are filled and normalised in place so that building them leaves no transient
    peak above the resident size (which would hide the measured call's peak on CPU).

    Returns:
        tuple: ``(embeddings, centroids, pos_paths, neg_paths)``; embeddings require grad.
    """
    from hirl_mm.models.utils import lift_paths, sample_negative_paths
    torch.manual_seed(seed)
    centroids = []
    for k in num_clusters:
        c = torch.empty(k, dim, device=device).normal_()
        centroids.append(c.div_(c.norm(dim=1, keepdim=True)))
    parents = [torch.randint(k_up, (k, ), device=device)
               for k, k_up in zip(num_clusters[:-1], num_clusters[1:])]
    embeddings = []
    for _ in num_clusters:
        e = torch.randn(num_images, dim, device=device)
        embeddings.append((e / e.norm(dim=1, keepdim=True)).requires_grad_())
    pos_paths = lift_paths(torch.randint(num_clusters[0], (num_images, ), device=device),
                           parents)
    neg_paths = sample_negative_paths(num_images, num_neg_path, num_clusters[0], parents,
                                      device=device)
    return embeddings, centroids, pos_paths, neg_paths


def _current_rss_bytes() -> int:
    """Resident set size of this process now (Linux ``/proc``; falls back to the peak)."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError, IndexError):
        return _peak_rss_bytes()


def _peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (``ru_maxrss``: KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == 'darwin' else peak * 1024


def run_worker(args: argparse.Namespace) -> None:
    """Measure one loss variant (this process runs nothing else) and print a JSON line."""
    from hirl_mm.models.losses import semantic_path_loss
    fn: Callable = semantic_path_loss if args.worker == 'ours' else naive_semantic_path_loss
    device = torch.device(args.device)
    cuda = device.type == 'cuda'

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    def step(inputs) -> Tensor:
        embeddings = inputs[0]
        for e in embeddings:
            e.grad = None
        loss = fn(*inputs)
        loss.backward()
        return loss

    # Initialise kernels / thread pools on tiny inputs so that their one-off allocations
    # are not charged to the measured call.
    step(make_loss_inputs(2, 4, [8, 4, 2][:len(args.num_clusters)], 16, device, args.seed))
    inputs = make_loss_inputs(args.num_images, args.num_neg_path, args.num_clusters,
                              args.dim, device, args.seed)
    sync()

    # Peak memory of one forward + backward, relative to what is allocated before it.
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        loss = step(inputs)
        sync()
        peak = torch.cuda.max_memory_allocated(device) - base
        slack = 0
    else:
        base, peak_before = _current_rss_bytes(), _peak_rss_bytes()
        loss = step(inputs)
        peak = _peak_rss_bytes() - base
        # > 0 if an earlier transient peak may hide part of this call's peak (then the
        # figure is an upper bound of this call's increase, never an underestimate).
        slack = max(peak_before - base, 0)
    grad_norm = float(torch.stack([e.grad.norm() for e in inputs[0]]).norm())

    for _ in range(args.warmup):
        step(inputs)
    times = []
    for _ in range(args.repeats):
        sync()
        start = time.perf_counter()
        step(inputs)
        sync()
        times.append(time.perf_counter() - start)
    print(WORKER_TAG + json.dumps(dict(
        peak_bytes=peak, slack_bytes=slack, times=times, loss=float(loss),
        grad_norm=grad_norm)), flush=True)


def run_variant(variant: str, args: argparse.Namespace) -> Dict:
    """Run one loss variant in a fresh Python process and parse its measurements."""
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', variant,
           '--device', args.device, '--seed', str(args.seed),
           '--num-images', str(args.num_images), '--num-neg-path', str(args.num_neg_path),
           '--dim', str(args.dim), '--warmup', str(args.warmup),
           '--repeats', str(args.repeats), '--num-clusters',
           *map(str, args.num_clusters)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(WORKER_TAG):
            return json.loads(line[len(WORKER_TAG):])
    raise RuntimeError(f'{variant} worker failed (exit {proc.returncode}):\n'
                       f'{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}')


def _mib(num_bytes: float) -> str:
    return f'{num_bytes / 2**20:,.1f} MiB'


def benchmark_loss(args: argparse.Namespace) -> bool:
    """Benchmark ours vs naive and print a table.

    Returns:
        bool: Whether both targets were met.
    """
    n, p, ks, d = args.num_images, args.num_neg_path, args.num_clusters, args.dim
    gathered = n * p * len(ks) * d * 4
    print(f'== Semantic path loss, forward + backward on {args.device} ==')
    print(f'N={n} images, P={p} negative paths, K={ks}, D={d}, L={len(ks)}, float32; '
          f'the naive [N, P, L, D] gather alone is {_mib(gathered)}')
    results = {v: run_variant(v, args) for v in ('ours', 'naive')}
    ours, naive = results['ours'], results['naive']
    mem_what = ('peak CUDA memory allocated above baseline' if args.device == 'cuda' else
                'peak RSS increase over baseline')
    header = f'{"variant":<8} {"time (median)":>14} {"min time":>10} {"peak memory":>14}  loss'
    print(f'memory: {mem_what}; time: median of {args.repeats} runs after '
          f'{args.warmup} warm-up run(s)')
    print(header)
    print('-' * len(header) + '-' * 10)
    for name, r in results.items():
        note = ' (upper bound)' if r['slack_bytes'] > 0.05 * max(r['peak_bytes'], 1) else ''
        print(f'{name:<8} {statistics.median(r["times"]) * 1e3:>11.1f} ms '
              f'{min(r["times"]) * 1e3:>7.1f} ms {_mib(r["peak_bytes"]):>14}  '
              f'{r["loss"]:.6f}{note}')
    mem_ratio = naive['peak_bytes'] / max(ours['peak_bytes'], 1)
    time_ratio = statistics.median(naive['times']) / statistics.median(ours['times'])
    mem_ok, time_ok = mem_ratio >= args.memory_target, time_ratio >= args.time_target
    print(f'memory ratio naive/ours: {mem_ratio:8.1f}x  (target >= {args.memory_target:g}x) '
          f'{"PASS" if mem_ok else "FAIL"}')
    print(f'time ratio   naive/ours: {time_ratio:8.1f}x  (target >= {args.time_target:g}x) '
          f'{"PASS" if time_ok else "FAIL"}')
    loss_diff = abs(ours['loss'] - naive['loss'])
    grad_diff = abs(ours['grad_norm'] - naive['grad_norm'])
    print(f'agreement: |loss diff| = {loss_diff:.2e}, |grad norm diff| = {grad_diff:.2e}')
    return mem_ok and time_ok


# ----------------------------------------------------------------------------------------
# Hierarchical k-means
# ----------------------------------------------------------------------------------------
def benchmark_kmeans(args: argparse.Namespace) -> None:
    """Time hierarchical k-means per back end on random normalised features."""
    from hirl_mm.clustering import HierarchicalKMeans
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    features = torch.randn(args.kmeans_points, args.kmeans_dim, device=device)
    features = features / features.norm(dim=1, keepdim=True)
    print(f'== Hierarchical k-means on {args.device}: {args.kmeans_points} x '
          f'{args.kmeans_dim} random normalised features, K={args.kmeans_clusters}, '
          f'{args.kmeans_iters} iterations, {args.kmeans_redo} restart(s) ==')
    header = f'{"backend":<8} {"wall time":>10}  non-empty clusters per level'
    print(header)
    print('-' * (len(header) + 6))
    for backend in args.kmeans_backends:
        try:
            kmeans = HierarchicalKMeans(num_clusters=args.kmeans_clusters, backend=backend,
                                        num_iters=args.kmeans_iters,
                                        num_redo=args.kmeans_redo, seed=args.seed)
        except ImportError as err:
            print(f'{backend:<8} {"skipped":>10}  ({err.__class__.__name__}: '
                  f'{str(err).splitlines()[0][:80]})')
            continue
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        result = kmeans(features)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        non_empty = [int((result.cluster_sizes(l) > 0).sum())
                     for l in range(result.num_levels)]
        print(f'{backend:<8} {elapsed:>8.2f} s  {non_empty}')


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point.

    Args:
        argv (Sequence[str], optional): Command line arguments.

    Returns:
        int: The exit status.
    """
    args = parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda requested but CUDA is not available')
    if args.worker:
        run_worker(args)
        return 0
    print(f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads'
          + (f', {torch.cuda.get_device_name()}' if args.device == 'cuda' else ''))
    ok = True
    if not args.skip_loss:
        ok = benchmark_loss(args)
    if not args.skip_kmeans:
        print()
        benchmark_kmeans(args)
    return 1 if args.strict and not ok else 0


if __name__ == '__main__':
    sys.exit(main())
