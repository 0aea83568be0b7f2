"""Benchmark the expensive parts of HIRL.

(a) ``loss``: forward + backward of the semantic path loss: ``hirl_mm``'s implementation
    (one ``[N, K_l]`` matrix product per level, then gathers) against a naive formulation
    that gathers the centroids of every negative path into an ``[N, P, L, D]`` tensor. Each
    variant runs in a fresh subprocess so that its peak memory is measured in isolation:
    on CPU as the increase of the peak resident set size (``ru_maxrss``, reset just before
    the call where Linux allows) over the resident size just before the call; on CUDA
    with ``torch.cuda.max_memory_allocated``.
(b) ``heads``: forward + backward of the semantic loss *including* the semantic heads
    (``SemanticPathHead``: one projection MLP per level) at each ``--embedding-dims`` width,
    by default 128 (MoCo v2's projector output, ``embedding='neck'``) and 2048 (pooled
    ResNet-50, ``embedding='backbone'``): time, peak memory (measured as in (a), each width
    in a fresh subprocess) and the heads' parameter count.
(c) ``kmeans``: wall time of bottom-up hierarchical k-means on random normalised features,
    for each requested back end.
(d) ``kmeans-by-dim``: one hierarchical k-means round at each ``--embedding-dims`` width
    on the same number of random normalised features.
(e) ``bank``: the bytes of the clustering feature bank every rank holds for a data set of
    ``--bank-samples`` images (ImageNet-1k by default), float32, per width. Computed
    (``N * D * 4``), not measured.

``--only`` picks sections; ``--skip-*`` drops them.

Example::

    python tools/analysis_tools/benchmark_hirl.py --device cpu
    python tools/analysis_tools/benchmark_hirl.py --device cuda --skip-kmeans
    python tools/analysis_tools/benchmark_hirl.py --only heads kmeans-by-dim bank
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
import torch.nn as nn
from torch import Tensor

WORKER_TAG = 'BENCHMARK_RESULT '
SECTIONS = ('loss', 'heads', 'kmeans', 'kmeans-by-dim', 'bank')
IMAGENET_1K_TRAIN_IMAGES = 1281167
# Which HIRL embedding a width stands for in the default comparison.
EMBEDDING_NAMES = {128: "neck (MoCo v2 projector), embedding='neck'",
                   2048: "backbone (pooled ResNet-50), embedding='backbone'"}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse command line arguments.

    Args:
        argv (Sequence[str], optional): Arguments; defaults to ``sys.argv[1:]``.

    Returns:
        argparse.Namespace: The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description='Benchmark the HIRL semantic path loss, semantic heads, hierarchical '
        'k-means and feature bank.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--threads', type=int,
                        help='CPU threads of torch (and faiss), also in the loss workers; '
                        'default: torch\'s own. On a small shared machine, 1 avoids OpenMP '
                        'stalls that dominate the small ops of the loss and heads')
    parser.add_argument('--only', nargs='+', metavar='SECTION',
                        help=f'run only these sections (space or comma separated) of '
                        f'{", ".join(SECTIONS)}; --skip-* still applies')
    parser.add_argument('--embedding-dims', type=int, nargs='+', default=[128, 2048],
                        help='embedding widths D compared by the heads, kmeans-by-dim and '
                        'bank sections (128: MoCo v2 projector output, embedding=neck; '
                        '2048: pooled ResNet-50, embedding=backbone)')
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
    heads = parser.add_argument_group(
        'semantic loss including the heads (uses --num-images, --num-neg-path, '
        '--num-clusters, --warmup, --repeats and --embedding-dims)')
    heads.add_argument('--num-mlp-layer', type=int, default=2,
                       help='Linear layers of each SemanticPathHead projection MLP')
    heads.add_argument('--skip-heads', action='store_true',
                       help='skip the loss + heads benchmark')
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
    kd = parser.add_argument_group('hierarchical k-means per embedding width '
                                   '(uses --embedding-dims)')
    kd.add_argument('--skip-kmeans-by-dim', action='store_true',
                    help='skip the k-means per embedding width benchmark')
    kd.add_argument('--kmeans-by-dim-points', type=int, default=20000)
    kd.add_argument('--kmeans-by-dim-clusters', type=int, nargs='+', default=[1000, 300, 30])
    kd.add_argument('--kmeans-by-dim-iters', type=int, default=20,
                    help='Lloyd iterations per restart (the reference uses 20)')
    kd.add_argument('--kmeans-by-dim-redo', type=int, default=1,
                    help='restarts per level (reduced: the HIRL configs use 5)')
    kd.add_argument('--kmeans-by-dim-backend', default='auto',
                    choices=['auto', 'faiss', 'torch'])
    bank = parser.add_argument_group('feature bank size, computed (uses --embedding-dims)')
    bank.add_argument('--skip-bank', action='store_true', help='skip the feature bank sizes')
    bank.add_argument('--bank-samples', type=int, default=IMAGENET_1K_TRAIN_IMAGES,
                      help='images N in the clustered data set (ImageNet-1k train)')
    parser.add_argument('--strict', action='store_true',
                        help='exit with status 1 if a target is missed')
    # Internal: run one loss variant and print its measurements (used by subprocesses).
    parser.add_argument('--worker', choices=['ours', 'naive', 'heads'], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.only is not None:
        only = [name for item in args.only for name in item.split(',') if name]
        unknown = sorted(set(only) - set(SECTIONS))
        if unknown:
            parser.error(f'--only: unknown section(s) {unknown}; choose from {SECTIONS}')
        args.only = only
    return args


def selected_sections(args: argparse.Namespace) -> List[str]:
    """The sections to run, in :data:`SECTIONS` order (``--only``, then ``--skip-*``)."""
    chosen = SECTIONS if args.only is None else args.only
    return [name for name in SECTIONS if name in chosen
            and not getattr(args, 'skip_' + name.replace('-', '_'))]


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


def make_head_inputs(num_images: int, num_neg_path: int, num_clusters: Sequence[int],
                     dim: int, num_mlp_layer: int, device: torch.device,
                     seed: int) -> Tuple[nn.Module, Tensor, List[Tensor], List[Tensor], Tensor]:
    """Semantic heads in training mode, a random embedding batch and a random hierarchy.

    Returns:
        tuple: ``(head, embedding, centroids, parents, pos_paths)``; ``embedding`` is
        ``[N, D]`` and requires grad (in training it comes from the neck or backbone).
    """
    from hirl_mm.models.heads import SemanticPathHead
    from hirl_mm.models.utils import lift_paths
    torch.manual_seed(seed)
    head = SemanticPathHead(in_channels=dim, num_levels=len(num_clusters),
                            num_neg_path=num_neg_path,
                            num_mlp_layer=num_mlp_layer).to(device).train()
    centroids = []
    for k in num_clusters:
        c = torch.empty(k, dim, device=device).normal_()
        centroids.append(c.div_(c.norm(dim=1, keepdim=True)))
    parents = [torch.randint(k_up, (k, ), device=device)
               for k, k_up in zip(num_clusters[:-1], num_clusters[1:])]
    embedding = torch.randn(num_images, dim, device=device).requires_grad_()
    pos_paths = lift_paths(torch.randint(num_clusters[0], (num_images, ), device=device),
                           parents)
    return head, embedding, centroids, parents, pos_paths


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module`` (BN running stats are buffers)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _loss_case(variant: str, args: argparse.Namespace, device: torch.device):
    """``(make_inputs(n, p, ks, d), step(inputs) -> loss, grad_tensors(inputs))`` of a variant."""
    if variant == 'heads':

        def make_inputs(n, p, ks, d):
            return make_head_inputs(n, p, ks, d, args.num_mlp_layer, device, args.seed)

        def step(inputs) -> Tensor:
            head, embedding, centroids, parents, pos_paths = inputs
            head.zero_grad(set_to_none=True)
            embedding.grad = None
            loss = head.loss(embedding, pos_paths, centroids, parents)['loss_semantic']
            loss.backward()
            return loss

        def grads(inputs) -> List[Tensor]:
            return [inputs[1].grad] + [p.grad for p in inputs[0].parameters()]

        return make_inputs, step, grads

    from hirl_mm.models.losses import semantic_path_loss
    fn: Callable = semantic_path_loss if variant == 'ours' else naive_semantic_path_loss

    def make_inputs(n, p, ks, d):
        return make_loss_inputs(n, p, ks, d, device, args.seed)

    def step(inputs) -> Tensor:
        for e in inputs[0]:
            e.grad = None
        loss = fn(*inputs)
        loss.backward()
        return loss

    def grads(inputs) -> List[Tensor]:
        return [e.grad for e in inputs[0]]

    return make_inputs, step, grads


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux ``/proc/self/clear_refs``),
    so that a transient peak before the measured call (imports, building inputs) cannot
    hide the call's own peak.

    Returns:
        bool: Whether the reset worked (else the peak keeps the earlier high-water mark).
    """
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def run_worker(args: argparse.Namespace) -> None:
    """Measure one loss variant (this process runs nothing else) and print a JSON line."""
    device = torch.device(args.device)
    cuda = device.type == 'cuda'
    make_inputs, step, grads = _loss_case(args.worker, args, device)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    # Initialise kernels / thread pools on tiny inputs so that their one-off allocations
    # are not charged to the measured call.
    step(make_inputs(2, 4, [8, 4, 2][:len(args.num_clusters)], 16))
    inputs = make_inputs(args.num_images, args.num_neg_path, args.num_clusters, args.dim)
    num_params = count_parameters(inputs[0]) if args.worker == 'heads' else 0
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
        _reset_peak_rss()
        base, peak_before = _current_rss_bytes(), _peak_rss_bytes()
        loss = step(inputs)
        peak = _peak_rss_bytes() - base
        # > 0 if an earlier transient peak may hide part of this call's peak (then the
        # figure is an upper bound of this call's increase, never an underestimate).
        slack = max(peak_before - base, 0)
    grad_norm = float(torch.stack([g.norm() for g in grads(inputs)]).norm())

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
        peak_bytes=peak, slack_bytes=slack, times=times, loss=float(loss.detach()),
        grad_norm=grad_norm, num_params=num_params)), flush=True)


def run_variant(variant: str, args: argparse.Namespace, dim: Optional[int] = None) -> Dict:
    """Run one loss variant in a fresh Python process and parse its measurements.

    Args:
        variant (str): ``'ours'``, ``'naive'`` or ``'heads'``.
        args (argparse.Namespace): The benchmark's arguments.
        dim (int, optional): Embedding width; defaults to ``args.dim``.
    """
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', variant,
           '--device', args.device, '--seed', str(args.seed),
           '--num-images', str(args.num_images), '--num-neg-path', str(args.num_neg_path),
           '--dim', str(args.dim if dim is None else dim), '--warmup', str(args.warmup),
           '--repeats', str(args.repeats), '--num-mlp-layer', str(args.num_mlp_layer),
           '--num-clusters', *map(str, args.num_clusters)]
    if args.threads:
        cmd += ['--threads', str(args.threads)]
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


def _embedding_name(dim: int) -> str:
    return EMBEDDING_NAMES.get(dim, 'custom width')


def benchmark_heads(args: argparse.Namespace) -> Dict[int, Dict]:
    """Semantic loss + semantic heads, forward + backward, per embedding width; prints a
    table.

    Returns:
        Dict[int, Dict]: The worker's measurements per width ``D``.
    """
    n, p, ks, dims = args.num_images, args.num_neg_path, args.num_clusters, args.embedding_dims
    print(f'== Semantic loss INCLUDING the semantic heads, forward + backward on '
          f'{args.device} ==')
    print(f'{len(ks)} x SemanticPathHead MLP (num_mlp_layer={args.num_mlp_layer} Linear '
          f'layers of width D), N={n} images, P={p} negative paths, K={ks}, float32; '
          f'D = the width of the embedding the heads read and the centroids live in')
    results = {d: run_variant('heads', args, dim=d) for d in dims}
    mem_what = ('peak CUDA memory allocated above baseline' if args.device == 'cuda' else
                'peak RSS increase over baseline')
    print(f'memory: {mem_what} (activations + parameter gradients of the first call; the '
          f'parameters and centroids are baseline); time: median of {args.repeats} runs '
          f'after {args.warmup} warm-up run(s)')
    header = (f'{"D":>5} {"head params":>12} {"(float32)":>12} {"time (median)":>14} '
              f'{"min time":>10} {"peak memory":>14}  embedding')
    print(header)
    print('-' * (len(header) + 40))
    for d, r in results.items():
        note = ' [memory: upper bound]' \
            if r['slack_bytes'] > 0.05 * max(r['peak_bytes'], 1) else ''
        print(f'{d:>5} {r["num_params"]:>12,} {_mib(r["num_params"] * 4):>12} '
              f'{statistics.median(r["times"]) * 1e3:>11.1f} ms '
              f'{min(r["times"]) * 1e3:>7.1f} ms {_mib(r["peak_bytes"]):>14}  '
              f'{_embedding_name(d)}{note}')
    if len(dims) >= 2:
        lo, hi = min(dims), max(dims)
        a, b = results[lo], results[hi]
        print(f'ratio D={hi} / D={lo}: params '
              f'{b["num_params"] / max(a["num_params"], 1):.1f}x, time '
              f'{statistics.median(b["times"]) / statistics.median(a["times"]):.1f}x, '
              f'peak memory {b["peak_bytes"] / max(a["peak_bytes"], 1):.1f}x')
    return results


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
    header = f'{"D":>5} {"features":>12} {"wall time":>10}  non-empty per level  embedding'
    print(header)
    print('-' * (len(header) + 30))
    results = {}
    for d in args.embedding_dims:
        torch.manual_seed(args.seed)
        features = torch.randn(n, d, device=device)
        features = features.div_(features.norm(dim=1, keepdim=True))
        kmeans = HierarchicalKMeans(num_clusters=ks, backend=backend,
                                    num_iters=args.kmeans_by_dim_iters,
                                    num_redo=args.kmeans_by_dim_redo, seed=args.seed)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        result = kmeans(features)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        non_empty = [int((result.cluster_sizes(l) > 0).sum()) for l in range(result.num_levels)]
        results[d] = dict(seconds=elapsed, backend=backend, non_empty=non_empty)
        print(f'{d:>5} {_mib(features.numel() * 4):>12} {elapsed:>8.2f} s  '
              f'{str(non_empty):<19}  {_embedding_name(d)}', flush=True)
        del features, result
    if len(results) >= 2:
        lo, hi = min(results), max(results)
        print(f'ratio D={hi} / D={lo}: time '
              f'{results[hi]["seconds"] / max(results[lo]["seconds"], 1e-9):.1f}x '
              f'(a Lloyd iteration costs ~N*K*D: {hi / lo:g}x)')
    return results


def bank_bytes(num_samples: int, dim: int, bytes_per_value: int = 4) -> Dict[str, int]:
    """Bytes of the clustering feature bank on each rank (computed, not measured).

    ``extract_embeddings`` all-gathers every rank's rows and places them by ``sample_idx``,
    so every rank holds the whole ``[N, D]`` bank; while the gathered rows and the placed
    copy coexist the peak is about twice that (the rank's own ~N/world_size shard and the
    int64 sample indices come on top).

    Args:
        num_samples (int): Images ``N``.
        dim (int): Embedding width ``D``.
        bytes_per_value (int): 4 for float32.

    Returns:
        Dict[str, int]: ``bank`` (``N * D * bytes``) and ``peak`` (``2 * bank``).
    """
    bank = num_samples * dim * bytes_per_value
    return dict(bank=bank, peak=2 * bank)


def benchmark_bank(args: argparse.Namespace) -> Dict[int, Dict[str, int]]:
    """Print the feature bank's size per rank per embedding width (COMPUTED, not measured).

    Returns:
        Dict[int, Dict[str, int]]: :func:`bank_bytes` per width ``D``.
    """
    n = args.bank_samples
    what = ' (ImageNet-1k train)' if n == IMAGENET_1K_TRAIN_IMAGES else ''
    print(f'== Feature bank per rank for {n:,} images{what}, float32: COMPUTED as '
          f'N x D x 4 bytes, NOT measured ==')
    print('every rank holds the whole bank (extract_embeddings all-gathers the rows); peak '
          '~2x while the gathered rows and the placed copy coexist (place_by_index), plus '
          "the rank's own ~N/world_size shard and N int64 indices; GB = 1e9 bytes")
    header = f'{"D":>5} {"bank bytes":>16} {"bank":>10} {"peak (~2x)":>11}  embedding'
    print(header)
    print('-' * (len(header) + 30))
    results = {}
    for d in args.embedding_dims:
        r = results[d] = bank_bytes(n, d)
        print(f'{d:>5} {r["bank"]:>16,} {r["bank"] / 1e9:>7.2f} GB {r["peak"] / 1e9:>8.2f} GB  '
              f'{_embedding_name(d)}')
    return results


def set_num_threads(num_threads: int) -> None:
    """Use ``num_threads`` CPU threads in torch and, if it imports, faiss."""
    torch.set_num_threads(num_threads)
    try:
        import faiss
    except ImportError:
        return
    faiss.omp_set_num_threads(num_threads)


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
    if args.threads:
        set_num_threads(args.threads)
    if args.worker:
        run_worker(args)
        return 0
    print(f'torch {torch.__version__}, {torch.get_num_threads()} CPU threads'
          + (f', {torch.cuda.get_device_name()}' if args.device == 'cuda' else ''))
    ok = True
    runners = {'loss': benchmark_loss, 'kmeans': benchmark_kmeans, 'heads': benchmark_heads,
               'kmeans-by-dim': benchmark_kmeans_by_dim, 'bank': benchmark_bank}
    for i, section in enumerate(selected_sections(args)):
        if i:
            print()
        result = runners[section](args)
        if section == 'loss':
            ok = result
        sys.stdout.flush()
    return 1 if args.strict and not ok else 0


if __name__ == '__main__':
    sys.exit(main())
