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
    for each requested back end; with ``--kmeans-precisions``, the torch back end once per
    precision of its distance products and faiss, with the level-0 objective and the
    assignment agreement against the first precision.
(d) ``kmeans-by-dim``: one hierarchical k-means round at each ``--embedding-dims`` width
    on the same number of random normalised features.
(e) ``kmeans-sharded``: single-process hierarchical k-means (faiss, torch) against the
    sharded back end on ``--sharded-worlds`` gloo processes, on the same bank (the
    ``--kmeans-*`` sizes): wall time, peak memory per process, objective vs faiss,
    agreement with the single-process torch back end; then the next round on drifted
    features, cold vs warm started.
(f) ``overhead``: HIRL's cost per epoch: the demo config's baseline, the demo config
    (extraction pass) and the demo config with the training-fed feature bank (same data,
    seed and schedule) trained one after the other, timed epoch by epoch with
    ``EpochTimerHook`` and split into training steps, data loading, extraction, clustering
    and other hooks; the ratios to the baseline against their targets (1.25x with
    extraction, 1.05x with the bank, 1.03x for the training step), and per-image costs.
(g) ``step``: HIRL's training step against its baseline's on the same real batch (the
    demo configs by default), interleaved, and a profile of HIRL's extra time: locating
    the view's rows, path lookup, negative paths, the semantic heads and the loss.
(h) ``bank``: the bytes of the clustering feature bank every rank holds for a data set of
    ``--bank-samples`` images (ImageNet-1k by default), float32, per width. Computed
    (``N * D * 4``), not measured.

``--only`` picks sections; ``--skip-*`` drops them. This file parses the arguments and runs
the chosen sections; the measurement code lives in ``hirl_benchmarks/`` next to it.

Example::

    python tools/analysis_tools/benchmark_hirl.py --device cpu
    python tools/analysis_tools/benchmark_hirl.py --device cuda --skip-kmeans
    python tools/analysis_tools/benchmark_hirl.py --only heads kmeans-by-dim bank
    python tools/analysis_tools/benchmark_hirl.py --only kmeans-sharded \
        --kmeans-points 200000 --kmeans-clusters 2000 500 50 --sharded-worlds 2 4
    python tools/analysis_tools/benchmark_hirl.py --only overhead
    python tools/analysis_tools/benchmark_hirl.py --device cuda --only kmeans \
        --kmeans-points 1281167 --kmeans-clusters 30000 10000 1000 --kmeans-redo 1 \
        --kmeans-precisions fp32 tf32 bf16
"""
import argparse
import os
import sys
from typing import List, Optional, Sequence

import torch

# Run as a script this folder is on sys.path already; loaded from elsewhere it is not.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from hirl_benchmarks.feature_bank import IMAGENET_1K_TRAIN_IMAGES, benchmark_bank  # noqa: E402
from hirl_benchmarks.heads import benchmark_heads  # noqa: E402
from hirl_benchmarks.kmeans import benchmark_kmeans, benchmark_kmeans_by_dim  # noqa: E402
from hirl_benchmarks.kmeans_sharded import benchmark_kmeans_sharded  # noqa: E402
from hirl_benchmarks.overhead import (DEMO_BASELINE, DEMO_CONFIG,  # noqa: E402
                                      benchmark_overhead)
from hirl_benchmarks.semantic_loss import benchmark_loss  # noqa: E402
from hirl_benchmarks.step_profile import benchmark_step  # noqa: E402
from hirl_benchmarks.worker import run_worker  # noqa: E402

SECTIONS = ('loss', 'heads', 'kmeans', 'kmeans-by-dim', 'kmeans-sharded', 'step', 'overhead',
            'bank')


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
    km.add_argument('--kmeans-precisions', nargs='+', metavar='PRECISION',
                    help='instead of one run per back end: the torch back end once per '
                    'precision of its distance products (fp32, tf32, bf16; the first is the '
                    'reference) and faiss, on the same features: objective and assignment '
                    'agreement vs the first')
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
    ks = parser.add_argument_group('sharded hierarchical k-means (uses the --kmeans-* sizes '
                                   'and --kmeans-backends)')
    ks.add_argument('--skip-kmeans-sharded', action='store_true',
                    help='skip the sharded k-means benchmark')
    ks.add_argument('--sharded-worlds', type=int, nargs='*', default=[2, 4],
                    help='numbers of processes of the sharded back end')
    ks.add_argument('--kmeans-drift', type=float, default=0.05,
                    help='noise added to the features before the next (cold / warm) round')
    ks.add_argument('--warm-redo', type=int, default=1,
                    help='restarts of a warm-started round (warm_start_num_redo)')
    # Internal: what a k-means worker process runs.
    ks.add_argument('--kmeans-backend', default='torch', help=argparse.SUPPRESS)
    ks.add_argument('--kmeans-out', help=argparse.SUPPRESS)
    ks.add_argument('--kmeans-warm', action='store_true', help=argparse.SUPPRESS)
    st = parser.add_argument_group('HIRL training step vs the baseline, profiled (seconds)')
    st.add_argument('--skip-step', action='store_true', help='skip the step section')
    st.add_argument('--step-config', default=DEMO_CONFIG, help='the HIRL config')
    st.add_argument('--step-baseline', default=DEMO_BASELINE, help='its baseline config')
    st.add_argument('--step-options', nargs='+', metavar='KEY=VALUE',
                    help='config overrides of both (as tools/train.py --cfg-options)')
    st.add_argument('--step-repeats', type=int, default=20, help='timed steps of each')
    st.add_argument('--step-warmup', type=int, default=3, help='untimed steps of each first')
    ov = parser.add_argument_group('HIRL overhead per epoch (three trainings, minutes)')
    ov.add_argument('--skip-overhead', action='store_true', help='skip the overhead section')
    ov.add_argument('--overhead-config', default=DEMO_CONFIG, help='the HIRL config')
    ov.add_argument('--overhead-baseline', default=DEMO_BASELINE,
                    help='its baseline: the same config without HIRL')
    ov.add_argument('--overhead-options', nargs='+', metavar='KEY=VALUE',
                    help='config options for both trainings (as --cfg-options), e.g. '
                    'train_cfg.max_epochs=4')
    ov.add_argument('--overhead-hirl-options', nargs='+', metavar='KEY=VALUE',
                    help='config options for the HIRL training only, e.g. '
                    'model.num_clusters=[12,6,3]')
    ov.add_argument('--overhead-no-bank', action='store_true',
                    help='skip the third training: HIRL with the training-fed feature bank')
    ov.add_argument('--overhead-keep-monitor', action='store_true',
                    help="keep the HIRL config's HierarchyMonitorHook (an evaluation the "
                    'baseline does not run; dropped by default)')
    ov.add_argument('--overhead-run-config', help=argparse.SUPPRESS)
    ov.add_argument('--overhead-run-options', nargs='+', help=argparse.SUPPRESS)
    ov.add_argument('--overhead-work-dir', help=argparse.SUPPRESS)
    bank = parser.add_argument_group('feature bank size, computed (uses --embedding-dims)')
    bank.add_argument('--skip-bank', action='store_true', help='skip the feature bank sizes')
    bank.add_argument('--bank-samples', type=int, default=IMAGENET_1K_TRAIN_IMAGES,
                      help='images N in the clustered data set (ImageNet-1k train)')
    parser.add_argument('--strict', action='store_true',
                        help='exit with status 1 if a target is missed')
    # Internal: run one loss variant and print its measurements (used by subprocesses).
    parser.add_argument('--worker', choices=['ours', 'naive', 'heads', 'kmeans-single',
                                             'kmeans-sharded', 'overhead'],
                        help=argparse.SUPPRESS)
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
               'kmeans-by-dim': benchmark_kmeans_by_dim, 'bank': benchmark_bank,
               'kmeans-sharded': benchmark_kmeans_sharded, 'overhead': benchmark_overhead,
               'step': benchmark_step}
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
