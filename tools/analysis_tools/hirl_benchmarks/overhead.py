"""Section ``overhead``: HIRL's cost per epoch, against its baseline, in one run.

The baseline config and the HIRL config (by default ``make demo``'s and the SimCLR config it
adds HIRL to: same data, same seed, same schedule) are trained one after the other, each in
a fresh process with :class:`~hirl_mm.engine.hooks.EpochTimerHook`. The table gives every
epoch's wall time of both, HIRL's split into training steps, data loading, extraction,
clustering and other hooks, and the ratio HIRL / baseline; then the per-image costs that
the ImageNet arithmetic in the README starts from.
"""
import argparse
import os
import statistics
import sys
import tempfile
from typing import Dict, List

from .measure import ENTRY_SCRIPT, run_worker_command
from .report import print_header

DEMO_CONFIG = 'configs/demo/hirl_simclr_tiny-resnet18_fashion-mnist.py'
DEMO_BASELINE = 'configs/study/simclr_tiny-resnet18_fashion-mnist.py'
# The target: a HIRL epoch at most this many times its baseline's.
TARGET_RATIO = 1.25


def run_training(args: argparse.Namespace, config: str, options: List[str]) -> Dict:
    """Train ``config`` once in a fresh process; returns the worker's result."""
    with tempfile.TemporaryDirectory(prefix='hirl_overhead_') as work_dir:
        cmd = [sys.executable, ENTRY_SCRIPT, '--worker', 'overhead', '--seed', str(args.seed),
               '--overhead-run-config', config, '--overhead-work-dir', work_dir]
        if options:
            cmd += ['--overhead-run-options', *options]
        if args.overhead_keep_monitor:
            cmd.append('--overhead-keep-monitor')
        if args.threads:
            cmd += ['--threads', str(args.threads)]
        return run_worker_command(cmd, f'training of {config}')


def benchmark_overhead(args: argparse.Namespace) -> Dict[str, Dict]:
    """Train the baseline, then the HIRL config, and print the per-epoch comparison.

    Returns:
        Dict[str, Dict]: ``{'baseline': ..., 'hirl': ...}``, each with its per-epoch
        ``records`` (see :class:`~hirl_mm.engine.hooks.EpochTimerHook`).
    """
    for path in (args.overhead_baseline, args.overhead_config):
        if not os.path.isfile(path):
            raise SystemExit(f'overhead: config {path!r} not found (run from the repository '
                             f'root, or pass --overhead-config / --overhead-baseline)')
    options = list(args.overhead_options or [])
    print(f'== HIRL overhead per epoch: {args.overhead_config} against '
          f'{args.overhead_baseline}, seed {args.seed}'
          + (f', options {" ".join(options)}' if options else '') + ' ==')
    runs = {'baseline': run_training(args, args.overhead_baseline, options),
            'hirl': run_training(args, args.overhead_config,
                                 options + list(args.overhead_hirl_options or []))}
    print_overhead(runs['baseline'], runs['hirl'])
    return runs


def print_overhead(baseline: Dict, hirl: Dict) -> None:
    """The per-epoch table, the summary ratios and the per-image costs."""
    base_records, hirl_records = baseline['records'], hirl['records']
    print(f'{hirl["num_samples"]} training images, batch {hirl["batch_size"]}; HIRL clusters '
          f'{hirl["num_clusters"]} in {hirl["embed_dim"]}-d. Seconds of wall time per epoch; '
          f'steps: forward + backward + update; data: waiting for batches; other: '
          f'checkpoints, logging, other hooks')
    print_header(f'{"epoch":>5} {"baseline":>9} {"HIRL":>8} {"ratio":>6} | {"HIRL: steps":>11} '
                 f'{"data":>6} {"extract":>8} {"cluster":>8} {"other":>6} | '
                 f'{"base: steps":>11} {"data":>6} {"other":>6}', 0)
    for b, h in zip(base_records, hirl_records):
        print(f'{h["epoch"]:>5} {b["total"]:>9.1f} {h["total"]:>8.1f} '
              f'{h["total"] / b["total"]:>5.2f}x | {h["steps"]:>11.1f} {h["data"]:>6.1f} '
              f'{h["extract"]:>8.1f} {h["cluster"]:>8.1f} {h["other"]:>6.1f} | '
              f'{b["steps"]:>11.1f} {b["data"]:>6.1f} {b["other"]:>6.1f}')
    pairs = list(zip(base_records, hirl_records))
    clustered = [(b, h) for b, h in pairs if h['extract'] + h['cluster'] > 0]
    warmup = [(b, h) for b, h in pairs if h['extract'] + h['cluster'] == 0]
    for name, group in (('all epochs', pairs), ('epochs with a clustering round', clustered),
                        ('warm-up epochs (no round)', warmup)):
        if group:
            ratio = sum(h['total'] for _, h in group) / sum(b['total'] for b, _ in group)
            verdict = ('meets' if ratio <= TARGET_RATIO else 'MISSES')
            print(f'{name:<31}: HIRL / baseline {ratio:.2f}x ({verdict} the '
                  f'{TARGET_RATIO}x target)')
    _print_per_image(pairs, clustered, hirl)


def _per_image(records: List[Dict], key: str) -> float:
    images = sum(r['images'] for r in records)
    return sum(r[key] for r in records) / max(images, 1)


def _print_per_image(pairs: List, clustered: List, hirl: Dict) -> None:
    """Per-image costs, the inputs of the ImageNet-1k arithmetic."""
    base_step = _per_image([b for b, _ in pairs], 'steps')
    hirl_step = _per_image([h for _, h in clustered] or [h for _, h in pairs], 'steps')
    print(f'\nper-image costs (ms): baseline training step {base_step * 1e3:.3f}; HIRL '
          f'training step (epochs with the semantic loss) {hirl_step * 1e3:.3f} '
          f'({hirl_step / base_step:.2f}x)')
    if clustered:
        num = hirl['num_samples']
        extract = statistics.mean(h['extract'] for _, h in clustered)
        cluster = statistics.mean(h['cluster'] for _, h in clustered)
        print(f'per round over {num} images: extraction {extract:.2f} s '
              f'({extract / num * 1e3:.3f} ms / image, {extract / num / base_step:.2f}x a '
              f'baseline training step per image), clustering {cluster:.2f} s')
