"""Section ``overhead``: HIRL's cost per epoch, against its baseline, in one run.

The baseline config and the HIRL config (by default ``make demo``'s and the SimCLR config it
adds HIRL to: same data, same seed, same schedule) are trained one after the other, each in
a fresh process with :class:`~hirl_mm.engine.hooks.EpochTimerHook`: the baseline, HIRL with
the paper's extraction pass, and HIRL with the training-fed feature bank
(``feature_bank=True`` on its clustering hook; ``--overhead-no-bank`` skips that run). The
table gives every epoch's wall time of each, HIRL's split into training steps, data
loading, extraction (or reading the bank), clustering and other hooks, and the ratios to
the baseline; then the per-image costs that the ImageNet arithmetic starts from.
"""
import argparse
import os
import statistics
import sys
import tempfile
from typing import Dict, List, Optional

from .measure import ENTRY_SCRIPT, run_worker_command
from .report import print_header

DEMO_CONFIG = 'configs/demo/hirl_simclr_tiny-resnet18_fashion-mnist.py'
DEMO_BASELINE = 'configs/study/simclr_tiny-resnet18_fashion-mnist.py'
# Targets per epoch with a clustering round: HIRL with the extraction pass, and with the
# training-fed bank (no extra pass over the data), at most this many times the baseline.
TARGET_RATIO = 1.25
BANK_TARGET_RATIO = 1.05
# Target of HIRL's training step (the semantic heads and loss) against the baseline's.
STEP_TARGET_RATIO = 1.03
# The hook option that switches the bank on (the clustering hook is custom_hooks[0]).
BANK_OPTION = 'custom_hooks.0.feature_bank=True'


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
    hirl_options = options + list(args.overhead_hirl_options or [])
    runs = {'baseline': run_training(args, args.overhead_baseline, options),
            'hirl': run_training(args, args.overhead_config, hirl_options)}
    if not args.overhead_no_bank:
        runs['bank'] = run_training(args, args.overhead_config, hirl_options + [BANK_OPTION])
    print_overhead(runs['baseline'], runs['hirl'], runs.get('bank'))
    return runs


def _print_table(label: str, baseline: Dict, hirl: Dict) -> None:
    """Per epoch: both totals, the ratio, HIRL's split and the baseline's."""
    print(f'\n{label}')
    print_header(f'{"epoch":>5} {"baseline":>9} {"HIRL":>8} {"ratio":>6} | {"HIRL: steps":>11} '
                 f'{"data":>6} {"extract":>8} {"cluster":>8} {"other":>6} | '
                 f'{"base: steps":>11} {"data":>6} {"other":>6}', 0)
    for b, h in zip(baseline['records'], hirl['records']):
        print(f'{h["epoch"]:>5} {b["total"]:>9.1f} {h["total"]:>8.1f} '
              f'{h["total"] / b["total"]:>5.2f}x | {h["steps"]:>11.1f} {h["data"]:>6.1f} '
              f'{h["extract"]:>8.1f} {h["cluster"]:>8.1f} {h["other"]:>6.1f} | '
              f'{b["steps"]:>11.1f} {b["data"]:>6.1f} {b["other"]:>6.1f}')


def _print_ratios(name: str, baseline: Dict, hirl: Dict, target: float) -> None:
    """Summary ratios of one HIRL run to the baseline, over epoch groups."""
    pairs = list(zip(baseline['records'], hirl['records']))
    clustered = [(b, h) for b, h in pairs if h['extract'] + h['cluster'] > 0]
    warmup = [(b, h) for b, h in pairs if h['extract'] + h['cluster'] == 0]
    for group_name, group in (('all epochs', pairs),
                              ('epochs with a clustering round', clustered),
                              ('warm-up epochs (no round)', warmup)):
        if group:
            ratio = sum(h['total'] for _, h in group) / sum(b['total'] for b, _ in group)
            verdict = ('meets' if ratio <= target else 'MISSES')
            print(f'{group_name:<31}: {name} / baseline {ratio:.2f}x ({verdict} the '
                  f'{target}x target)')


def print_overhead(baseline: Dict, hirl: Dict, bank: Optional[Dict] = None) -> None:
    """The per-epoch tables, the summary ratios and the per-image costs.

    Args:
        baseline (Dict): The baseline run's result.
        hirl (Dict): HIRL's, with the extraction pass.
        bank (Dict, optional): HIRL's with the training-fed feature bank.
    """
    print(f'{hirl["num_samples"]} training images, batch {hirl["batch_size"]}; HIRL clusters '
          f'{hirl["num_clusters"]} in {hirl["embed_dim"]}-d. Seconds of wall time per epoch; '
          f'steps: forward + backward + update; data: waiting for batches; extract: the '
          f'extraction pass (with the bank: reading it and embedding the samples no step '
          f'saw); other: checkpoints, logging, other hooks')
    runs = [('HIRL', 'HIRL with the extraction pass (the paper\'s way)', hirl, TARGET_RATIO)]
    if bank is not None:
        runs.append(('HIRL (bank)', 'HIRL with the training-fed feature bank', bank,
                     BANK_TARGET_RATIO))
    for _, label, run, _ in runs:
        _print_table(label, baseline, run)
    print()
    for name, _, run, target in runs:
        _print_ratios(name, baseline, run, target)
    pairs = list(zip(baseline['records'], hirl['records']))
    clustered = [(b, h) for b, h in pairs if h['extract'] + h['cluster'] > 0]
    _print_per_image(pairs, clustered, hirl)
    if bank is not None:
        bank_clustered = [h for h in bank['records'] if h['extract'] + h['cluster'] > 0]
        if bank_clustered:
            print(f'with the bank, per round: reading it (and embedding the samples no step '
                  f'saw) {statistics.mean(h["extract"] for h in bank_clustered):.2f} s, '
                  f'clustering {statistics.mean(h["cluster"] for h in bank_clustered):.2f} s')


def _per_image(records: List[Dict], key: str) -> float:
    images = sum(r['images'] for r in records)
    return sum(r[key] for r in records) / max(images, 1)


def _print_per_image(pairs: List, clustered: List, hirl: Dict) -> None:
    """Per-image costs, the inputs of the ImageNet-1k arithmetic."""
    base_step = _per_image([b for b, _ in pairs], 'steps')
    hirl_step = _per_image([h for _, h in clustered] or [h for _, h in pairs], 'steps')
    step_ratio = hirl_step / base_step
    print(f'\nper-image costs (ms): baseline training step {base_step * 1e3:.3f}; HIRL '
          f'training step (epochs with the semantic loss) {hirl_step * 1e3:.3f} '
          f'({step_ratio:.2f}x; {"meets" if step_ratio <= STEP_TARGET_RATIO else "MISSES"} '
          f'the {STEP_TARGET_RATIO}x target)')
    if clustered:
        num = hirl['num_samples']
        extract = statistics.mean(h['extract'] for _, h in clustered)
        cluster = statistics.mean(h['cluster'] for _, h in clustered)
        print(f'per round over {num} images: extraction {extract:.2f} s '
              f'({extract / num * 1e3:.3f} ms / image, {extract / num / base_step:.2f}x a '
              f'baseline training step per image), clustering {cluster:.2f} s')
