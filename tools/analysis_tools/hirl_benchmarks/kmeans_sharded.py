"""Section ``kmeans-sharded``: single-process hierarchical k-means vs the sharded back end.

One run, side by side, on the same random L2-normalised bank (built from seeded blocks,
so every process builds only its rows): faiss and torch in one process each, then the
sharded torch back end on each ``--sharded-worlds`` number of gloo processes (NCCL with
``--device cuda`` when there are that many GPUs). Each variant runs in fresh processes;
the table gives the clustering's wall time and CPU time (all ranks together; steadier than
wall time on a shared machine), the peak memory of building the bank and
clustering it per process (the largest rank's), the level-0 objective over all N points
relative to faiss's, and the agreement of the level-0 assignments with the single-process
torch back end (the sharded back end makes the same random draws from the same seed).
A last table runs the next round on drifted features cold and warm started.
"""
import argparse
import os
import socket
import sys
import tempfile
from typing import Dict, List, Optional

import torch

from .measure import ENTRY_SCRIPT, run_worker_command
from .report import mib, print_header


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _worker_args(args: argparse.Namespace, out: str) -> List[str]:
    cmd = ['--device', args.device, '--seed', str(args.seed),
           '--kmeans-points', str(args.kmeans_points), '--kmeans-dim', str(args.kmeans_dim),
           '--kmeans-iters', str(args.kmeans_iters), '--kmeans-redo', str(args.kmeans_redo),
           '--kmeans-clusters', *map(str, args.kmeans_clusters), '--kmeans-out', out,
           '--kmeans-drift', str(args.kmeans_drift), '--warm-redo', str(args.warm_redo)]
    return cmd + (['--threads', str(args.threads)] if args.threads else [])


def run_single(args: argparse.Namespace, backend: str, out: str, warm: bool) -> Dict:
    """One process with the whole bank and ``backend``."""
    cmd = [sys.executable, ENTRY_SCRIPT, '--worker', 'kmeans-single', '--kmeans-backend',
           backend, *_worker_args(args, out)] + (['--kmeans-warm'] if warm else [])
    return run_worker_command(cmd, f'{backend} worker')


def run_sharded(args: argparse.Namespace, world: int, out: str) -> Dict:
    """``world`` processes of the sharded back end (torch.distributed.run)."""
    cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={world}',
           f'--master_port={_free_port()}', ENTRY_SCRIPT, '--worker', 'kmeans-sharded',
           *_worker_args(args, out)]
    env = dict(os.environ)
    if not args.threads:  # split the cores between the ranks, as a launcher would
        env['OMP_NUM_THREADS'] = str(max(1, torch.get_num_threads() // world))
    return run_worker_command(cmd, f'{world}-process sharded run', env)


def agreement(path: str, reference: Optional[torch.Tensor]) -> str:
    """Share of level-0 assignments equal to the single-process torch back end's."""
    if reference is None or not os.path.exists(path):
        return 'n/a'
    return f'{float((torch.load(path) == reference).double().mean()) * 100:.2f} %'


def benchmark_kmeans_sharded(args: argparse.Namespace) -> Dict[str, Dict]:
    """Run every variant and print the tables.

    Returns:
        Dict[str, Dict]: Each variant's worker result (``'faiss'``, ``'torch'``,
        ``'sharded-2'``, ...) with ``agreement`` added.
    """
    n, d, ks = args.kmeans_points, args.kmeans_dim, args.kmeans_clusters
    print(f'== Sharded hierarchical k-means on {args.device}: {n} x {d} random normalised '
          f'features, K={ks}, {args.kmeans_iters} iterations, {args.kmeans_redo} '
          f'restart(s); {torch.get_num_threads()} CPU threads in all ==')
    print('peak memory: building the bank + clustering it, per process (the largest rank); '
          'objective: level-0 sum of squared distances to the cluster means, over all N')
    results: Dict[str, Dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for backend in args.kmeans_backends:
            paths[backend] = os.path.join(tmp, f'{backend}.pth')
            try:
                results[backend] = run_single(args, backend, paths[backend],
                                              warm=backend == 'torch')
            except RuntimeError as err:
                print(f'{backend}: skipped ({str(err).splitlines()[0][:100]})')
        worlds = args.sharded_worlds
        if args.device == 'cuda' and worlds and max(worlds) > torch.cuda.device_count():
            print(f'sharded runs on CUDA need one GPU per process: {torch.cuda.device_count()}'
                  f' GPU(s) here, so only world sizes up to that run')
            worlds = [w for w in worlds if w <= torch.cuda.device_count()]
        for world in worlds:
            paths[f'sharded-{world}'] = os.path.join(tmp, f'sharded{world}.pth')
            results[f'sharded-{world}'] = run_sharded(args, world, paths[f'sharded-{world}'])
        reference = torch.load(paths['torch']) if 'torch' in results else None
        for name, r in results.items():  # faiss draws its own init: labels differ
            r['agreement'] = 'n/a' if name == 'faiss' else agreement(paths[name], reference)
    _print_table(results)
    if 'torch' in results and results['torch'].get('warm'):
        _print_warm(results['torch']['warm'], args)
    return results


def _print_table(results: Dict[str, Dict]) -> None:
    faiss_obj = results.get('faiss', {}).get('objective')
    single_peak = results.get('torch', results.get('faiss', {})).get('peak_bytes')
    print_header(f'{"variant":<22} {"threads":>7} {"wall time":>10} {"CPU time":>10} '
                 f'{"peak mem/rank":>14} '
                 f'{"vs 1 proc":>9} {"bank/rank":>12} {"objective":>12} {"vs faiss":>9} '
                 f'{"agree w/ torch":>14}', 0)
    for name, r in results.items():
        label = (f'{name} (1 process)' if r['ranks'] == 1 else
                 f'sharded, {r["ranks"]} processes')
        mem_ratio = f'{r["peak_bytes"] / single_peak:.2f}x' if single_peak else 'n/a'
        vs_faiss = f'{(r["objective"] / faiss_obj - 1) * 100:+.3f} %' if faiss_obj else 'n/a'
        print(f'{label:<22} {r["threads"]:>7} {r["seconds"]:>8.2f} s '
              f'{r["cpu_seconds"]:>8.2f} s {mib(r["peak_bytes"]):>14} {mem_ratio:>9} '
              f'{mib(r["bank_bytes"]):>12} '
              f'{r["objective"]:>12.2f} {vs_faiss:>9} {r["agreement"]:>14}')


def _print_warm(rows: List[Dict], args: argparse.Namespace) -> None:
    print(f'\nnext round (features + {args.kmeans_drift} x Gaussian noise, renormalised), '
          f'single-process torch:')
    print_header(f'{"start":<6} {"restarts":>8} {"wall time":>10} {"CPU time":>10} '
                 f'{"objective":>12} '
                 f'{"vs cold":>9}', 0)
    cold = rows[0]
    for r in rows:
        print(f'{r["name"]:<6} {r["redo"]:>8} {r["seconds"]:>8.2f} s '
              f'{r["cpu_seconds"]:>8.2f} s {r["objective"]:>12.2f} '
              f'{(r["objective"] / cold["objective"] - 1) * 100:>+8.3f} %')
    print(f'warm / cold: wall time {rows[1]["seconds"] / max(cold["seconds"], 1e-9):.2f}x, '
          f'CPU time {rows[1]["cpu_seconds"] / max(cold["cpu_seconds"], 1e-9):.2f}x')
