"""Peak memory, timing and the subprocess-per-variant runner of the HIRL benchmark.

Each measured variant runs in a fresh Python process (the entry script with ``--worker``)
so that its peak memory is measured in isolation: on CPU as the increase of the peak
resident set size (``ru_maxrss``, reset just before the call where Linux allows) over the
resident size just before the call; on CUDA with ``torch.cuda.max_memory_allocated``.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor

WORKER_TAG = 'BENCHMARK_RESULT '
# The entry point that a worker subprocess runs (with ``--worker VARIANT``).
ENTRY_SCRIPT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'benchmark_hirl.py')


class LossCase(NamedTuple):
    """How a worker builds, runs and inspects one loss variant.

    Attributes:
        make_inputs (Callable): ``(N, P, K_l list, D) -> inputs``.
        step (Callable): One forward + backward, ``inputs -> loss``.
        grads (Callable): ``inputs -> gradients`` whose joint norm is reported.
        num_params (Callable): ``inputs -> trainable parameters`` (0 without heads).
    """
    make_inputs: Callable[[int, int, Sequence[int], int], Any]
    step: Callable[[Any], Tensor]
    grads: Callable[[Any], List[Tensor]]
    num_params: Callable[[Any], int]


def synchronize(device: torch.device) -> None:
    """Wait for the device's pending work (a no-op off CUDA)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> Tuple[Any, float]:
    """Run ``fn()`` between device synchronisations.

    Returns:
        tuple: ``(fn's result, wall seconds)``.
    """
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - start


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


def peak_memory(fn: Callable[[], Any], device: torch.device) -> Tuple[Any, int, int]:
    """Peak memory of ``fn()`` relative to what is allocated just before it.

    Returns:
        tuple: ``(fn's result, peak bytes, slack bytes)``. Slack is > 0 on CPU if an
        earlier transient peak may hide part of this call's peak (then the figure is an
        upper bound of this call's increase, never an underestimate); 0 on CUDA.
    """
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        result = fn()
        synchronize(device)
        return result, torch.cuda.max_memory_allocated(device) - base, 0
    _reset_peak_rss()
    base, peak_before = _current_rss_bytes(), _peak_rss_bytes()
    result = fn()
    return result, _peak_rss_bytes() - base, max(peak_before - base, 0)


def measure_case(case: LossCase, device: torch.device, num_images: int, num_neg_path: int,
                 num_clusters: Sequence[int], dim: int, warmup: int,
                 repeats: int) -> Dict[str, Any]:
    """Measure one loss variant: peak memory of its first call, then its timed runs.

    Args:
        case (LossCase): The variant.
        device (torch.device): Where it runs.
        num_images (int): Images per batch ``N``.
        num_neg_path (int): Negative paths ``P``.
        num_clusters (Sequence[int]): Clusters per level ``K_l``, finest first.
        dim (int): Embedding width ``D``.
        warmup (int): Untimed runs before timing.
        repeats (int): Timed runs.

    Returns:
        Dict[str, Any]: ``peak_bytes``, ``slack_bytes``, ``times``, ``loss``, ``grad_norm``
        and ``num_params``.
    """
    # Initialise kernels / thread pools on tiny inputs so that their one-off allocations
    # are not charged to the measured call.
    case.step(case.make_inputs(2, 4, [8, 4, 2][:len(num_clusters)], 16))
    inputs = case.make_inputs(num_images, num_neg_path, num_clusters, dim)
    num_params = case.num_params(inputs)
    synchronize(device)

    loss, peak, slack = peak_memory(lambda: case.step(inputs), device)
    grad_norm = float(torch.stack([g.norm() for g in case.grads(inputs)]).norm())

    for _ in range(warmup):
        case.step(inputs)
    times = [timed(lambda: case.step(inputs), device)[1] for _ in range(repeats)]
    return dict(peak_bytes=peak, slack_bytes=slack, times=times, loss=float(loss.detach()),
                grad_norm=grad_norm, num_params=num_params)


def run_variant(variant: str, args: argparse.Namespace, dim: Optional[int] = None) -> Dict:
    """Run one loss variant in a fresh Python process and parse its measurements.

    Args:
        variant (str): ``'ours'``, ``'naive'`` or ``'heads'``.
        args (argparse.Namespace): The benchmark's arguments.
        dim (int, optional): Embedding width; defaults to ``args.dim``.

    Returns:
        Dict: What :func:`measure_case` returned in the worker.
    """
    cmd = [sys.executable, ENTRY_SCRIPT, '--worker', variant,
           '--device', args.device, '--seed', str(args.seed),
           '--num-images', str(args.num_images), '--num-neg-path', str(args.num_neg_path),
           '--dim', str(args.dim if dim is None else dim), '--warmup', str(args.warmup),
           '--repeats', str(args.repeats), '--num-mlp-layer', str(args.num_mlp_layer),
           '--num-clusters', *map(str, args.num_clusters)]
    if args.threads:
        cmd += ['--threads', str(args.threads)]
    return run_worker_command(cmd, f'{variant} worker')


def run_worker_command(cmd: List[str], what: str,
                       env: Optional[Dict[str, str]] = None) -> Dict:
    """Run a worker command and parse the JSON line it printed after :data:`WORKER_TAG`.

    Args:
        cmd (List[str]): The command.
        what (str): What it runs, for the error message.
        env (Dict[str, str], optional): Its environment; defaults to this process's.

    Returns:
        Dict: The worker's result.

    Raises:
        RuntimeError: The worker printed no result (with the tails of its output).
    """
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(WORKER_TAG):
            return json.loads(line[len(WORKER_TAG):])
    raise RuntimeError(f'{what} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n'
                       f'{proc.stderr[-4000:]}')
