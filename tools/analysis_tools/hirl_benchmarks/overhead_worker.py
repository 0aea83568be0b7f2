"""What one process of the ``overhead`` section runs: one timed training of a config.

The config is trained as it stands (its data, seed, schedule), with ``--overhead-options``
merged in, its work dir in a temporary folder and :class:`EpochTimerHook` added unless it
has one. Diagnostic ``HierarchyMonitorHook`` entries are dropped unless
``--overhead-keep-monitor``: they are evaluation, which the baseline does not run. Prints
one JSON line: the per-epoch records, the training set size and, for HIRL, the clustering
sizes.
"""
import argparse
import json
from typing import Dict, List

from .measure import WORKER_TAG


def parse_options(options: List[str]) -> Dict:
    """``KEY=VALUE`` strings parsed as mmengine's ``--cfg-options`` are."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--options', nargs='*', action=DictAction, default={})
    return parser.parse_args(['--options', *options] if options else []).options


def run_overhead_training(args: argparse.Namespace) -> None:
    """Train ``args.overhead_run_config`` once, timed epoch by epoch, and print the result."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from hirl_mm.engine.hooks import EpochTimerHook

    cfg = Config.fromfile(args.overhead_run_config)
    cfg.merge_from_dict(parse_options(args.overhead_run_options))
    cfg.work_dir = args.overhead_work_dir
    hooks = [h for h in cfg.get('custom_hooks', [])
             if args.overhead_keep_monitor or h.get('type') != 'HierarchyMonitorHook']
    # One timer only (the demo config has its own): its records are the result read below.
    if not any(h.get('type') == 'EpochTimerHook' for h in hooks):
        hooks.append(dict(type='EpochTimerHook'))
    cfg.custom_hooks = hooks
    cfg.randomness = dict(seed=args.seed)
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    runner.train()
    (timer, ) = [h for h in runner.hooks if isinstance(h, EpochTimerHook)]
    model = runner.model
    prototypes = getattr(model, 'prototypes', None)
    result = dict(records=timer.records, num_samples=len(runner.train_dataloader.dataset),
                  batch_size=runner.train_dataloader.batch_size,
                  num_clusters=list(prototypes.num_clusters) if prototypes is not None else None,
                  embed_dim=prototypes.dim if prototypes is not None else None)
    print(WORKER_TAG + json.dumps(result), flush=True)
