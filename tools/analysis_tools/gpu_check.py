"""One prepared check of every CUDA path of hirl_mm, written to a JSON + markdown report.

Checks (each in isolation: ok, failed with the error and its traceback's tail, or skipped
with the reason), sized so that the whole run takes about 8 minutes on one H200:

``kmeans``
    HIRL's ImageNet-size hierarchy: 1,281,167 x 128 random unit rows into 30000 / 10000 /
    1000 clusters, 20 iterations, 1 restart, by the torch back end with fp32 / tf32 / bf16
    distance products and by faiss-gpu on the same data: seconds, level-0 objective and
    assignment agreement against fp32, speed-up over faiss, against issue 18's targets.
``hook-faiss`` / ``hook-torch``
    The clustering hook with each k-means back end on a HIRL model on the GPU: the
    prototypes end up on the model's device.
``sharded``
    The sharded k-means back end in a one-process NCCL group (identical to the
    single-process result), or two processes on the GPU over gloo if NCCL refuses.
``resume``
    A HIRL run to a checkpoint, resumed on the GPU for one more epoch.
``training``
    ``configs/hirl/mocov2_r50.py`` and its baseline (named in its header comment) on
    synthetic 224 px images with AMP (bfloat16): baseline, HIRL with the extraction pass
    and HIRL with the training-fed feature bank, side by side: images/s of the training
    steps, peak GPU memory, extraction and clustering seconds, the final loss.

``--device cpu --tiny`` runs the same code at toy size on the CPU (gloo instead of NCCL,
a thin ResNet-18, 32 px images; CUDA-only parts reported as skipped), as the test suite
does so that the script cannot rot.

Example::

    python tools/analysis_tools/gpu_check.py --out-dir work_dirs/gpu_check
    python tools/analysis_tools/gpu_check.py --device cpu --tiny --out-dir /tmp/gpu_check
"""
import argparse
import os
import shlex
import sys
import time
from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional, Sequence

# Run as a script this folder is on sys.path already; loaded from elsewhere it is not.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import torch  # noqa: E402

# The short checks before the long training one, so that a slow data loader there cannot
# leave them to --time-limit.
CHECKS = ('kmeans', 'hook-faiss', 'hook-torch', 'sharded', 'resume', 'training')
# Seconds each check is sized to take on one H200 (full size); over it is flagged.
BUDGETS = {'kmeans': 90, 'training': 210, 'hook-faiss': 30, 'hook-torch': 30,
           'sharded': 40, 'resume': 60}
IMAGENET_TRAIN_IMAGES = 1_281_167


def sizes(tiny: bool, num_workers: int) -> Dict[str, Any]:
    """The size of every check: full (one H200, ~8 minutes) or ``tiny`` (CPU, seconds)."""
    from gpu_checks.training import TrainSizes
    if tiny:  # the same code paths at toy size
        train = TrainSizes(num_images=32, num_clusters=[8, 4, 2], image_size=32,
                           crop_size=32, batch_size=8, num_workers=0, skip_iters=1,
                           tiny_model=True)
        return dict(train=train,
                    hook=replace(train, num_images=16, epochs=1),
                    resume=replace(train, num_images=16),
                    kmeans=dict(num_points=2000, dim=128, num_clusters=[40, 10, 4],
                                num_iters=5),
                    sharded=dict(num_points=1000, dim=32, num_clusters=[20, 5, 2],
                                 num_iters=5))
    train = TrainSizes(num_images=4096, num_clusters=[256, 64, 16], num_workers=num_workers)
    return dict(train=train,
                hook=TrainSizes(num_images=512, num_clusters=[32, 8, 4], epochs=1,
                                num_workers=num_workers, skip_iters=2),
                resume=TrainSizes(num_images=512, num_clusters=[32, 8, 4],
                                  num_workers=num_workers, skip_iters=2),
                kmeans=dict(num_points=IMAGENET_TRAIN_IMAGES, dim=128,
                            num_clusters=[30000, 10000, 1000], num_iters=20),
                sharded=dict(num_points=200_000, dim=128, num_clusters=[2000, 500, 50],
                             num_iters=20))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line (``argv`` defaults to ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(
        description='Run every CUDA path of hirl_mm once and write report.json / report.md.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--out-dir', default='work_dirs/gpu_check',
                        help='where report.json, report.md and the runs\' work dirs go')
    parser.add_argument('--device', choices=['cuda', 'cpu'], default='cuda',
                        help='cpu: for machines without CUDA (with --tiny: the test suite)')
    parser.add_argument('--tiny', action='store_true',
                        help='toy sizes (seconds on a CPU) instead of the ~8-minute GPU run')
    parser.add_argument('--checks', nargs='+', choices=CHECKS, default=list(CHECKS),
                        help='the checks to run, in this order')
    parser.add_argument('--time-limit', type=float, default=480.,
                        help='seconds for the whole run: checks not started by then are '
                        'skipped')
    parser.add_argument('--num-workers', type=int, default=min(os.cpu_count() or 1, 16),
                        help='data loader workers of the training checks (full size)')
    parser.add_argument('--two-process-sharded', action='store_true',
                        help='also run the sharded back end in two gloo processes (always '
                        'when NCCL refuses, and with --device cpu)')
    parser.add_argument('--threads', type=int,
                        help='CPU threads of torch and faiss (default: torch\'s own); 1 on a '
                        'small shared machine, where OpenMP stalls dominate small ops')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def check_functions(args: argparse.Namespace, device: torch.device
                    ) -> Dict[str, Callable[[], Dict[str, Any]]]:
    """Every check as a function of no arguments."""
    from gpu_checks import clustering, training
    size = sizes(args.tiny, args.num_workers)
    amp = device.type == 'cuda'
    work = os.path.join(args.out_dir, 'work_dirs')
    return {
        'kmeans': lambda: clustering.kmeans_check(device, seed=args.seed,
                                                  full_size=not args.tiny, **size['kmeans']),
        'training': lambda: training.training_check(size['train'], amp, work),
        'hook-faiss': lambda: training.hook_check('faiss', size['hook'], amp, work, device),
        'hook-torch': lambda: training.hook_check('torch', size['hook'], amp, work, device),
        'sharded': lambda: clustering.sharded_check(
            device, seed=args.seed, two_processes=args.two_process_sharded or
            device.type == 'cpu', **size['sharded']),
        'resume': lambda: training.resume_check(size['resume'], amp, work),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the checks and write the report.

    Args:
        argv (Sequence[str], optional): Command line arguments.

    Returns:
        int: 0 when no check failed, else 1.
    """
    args = parse_args(argv)
    if args.device == 'cpu':
        # Hidden before anything initialises CUDA, so that mmengine's runners stay on the CPU.
        os.environ['CUDA_VISIBLE_DEVICES'] = ''
    elif not torch.cuda.is_available():
        raise SystemExit('gpu_check: CUDA is not available on this machine. The check is '
                         'meant for a GPU; pass --device cpu --tiny to run its CPU side.')
    if args.threads:
        from benchmark_hirl import set_num_threads
        set_num_threads(args.threads)
    import hirl_mm  # noqa: F401  (registers hirl_mm's modules)
    from gpu_checks.report import machine_info, run_check, write_report

    device = torch.device('cuda', torch.cuda.current_device()) if args.device == 'cuda' \
        else torch.device('cpu')
    start = time.perf_counter()
    functions = check_functions(args, device)
    results: List[Dict[str, Any]] = []
    for name in args.checks:
        left = args.time_limit - (time.perf_counter() - start)
        results.append(run_check(name, functions[name], BUDGETS[name], left))
    report = dict(command=' '.join(['python', 'tools/analysis_tools/gpu_check.py'] +
                                   [shlex.quote(a) for a in (argv or sys.argv[1:])]),
                  seconds=time.perf_counter() - start, time_limit_s=args.time_limit,
                  tiny=args.tiny, machine=machine_info(args.device), checks=results)
    print(write_report(report, args.out_dir))
    return 1 if any(r['status'] == 'failed' for r in results) else 0


if __name__ == '__main__':
    sys.exit(main())
