"""What one process of the ``overhead`` section runs: one timed training of a config.

The config is trained as it stands (its data, seed, schedule), with ``--overhead-options``
merged in, its work dir in a temporary folder and :class:`EpochTimerHook` added unless it
has one. Diagnostic ``HierarchyMonitorHook`` entries are dropped unless
``--overhead-keep-monitor``: they are evaluation, which the baseline does not run. Prints
one JSON line: the per-epoch records, the training set size and, for HIRL, the clustering
sizes. :func:`train_timed` is the training itself, also run in-process by
``tools/analysis_tools/gpu_check.py``.
"""
import argparse
import json
from typing import Dict, List, Sequence, Tuple

from .measure import WORKER_TAG


def parse_options(options: List[str]) -> Dict:
    """``KEY=VALUE`` strings parsed as mmengine's ``--cfg-options`` are."""
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--options', nargs='*', action=DictAction, default={})
    return parser.parse_args(['--options', *options] if options else []).options


def train_timed(cfg, work_dir: str, seed: int, keep_monitor: bool = False,
                extra_hooks: Sequence = ()) -> Tuple[object, Dict]:
    """Train ``cfg`` once in this process, timed epoch by epoch.

    Args:
        cfg (Config): The config (changed in place: work dir, seed, hooks, log level).
        work_dir (str): The runner's work dir.
        seed (int): The runner's seed.
        keep_monitor (bool): Keep ``HierarchyMonitorHook`` entries (dropped by default).
        extra_hooks (Sequence): Further hooks (configs or instances) to train with.

    Returns:
        tuple: The trained Runner and the result printed by :func:`run_overhead_training`.
    """
    from mmengine.runner import Runner
    from mmpretrain.utils import get_ori_model

    from hirl_mm.engine.hooks import EpochTimerHook

    cfg.work_dir = work_dir
    hooks = [h for h in cfg.get('custom_hooks', []) if keep_monitor or
             not isinstance(h, dict) or h.get('type') != 'HierarchyMonitorHook']
    # One timer only (the demo config has its own): its records are the result read below.
    if not any(isinstance(h, dict) and h.get('type') == 'EpochTimerHook' for h in hooks):
        hooks.append(dict(type='EpochTimerHook'))
    cfg.custom_hooks = hooks + list(extra_hooks)
    cfg.randomness = dict(seed=seed)
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(cfg)
    runner.train()
    (timer, ) = [h for h in runner.hooks if isinstance(h, EpochTimerHook)]
    prototypes = getattr(get_ori_model(runner.model), 'prototypes', None)
    result = dict(records=timer.records, num_samples=len(runner.train_dataloader.dataset),
                  batch_size=runner.train_dataloader.batch_size,
                  num_clusters=list(prototypes.num_clusters) if prototypes is not None else None,
                  embed_dim=prototypes.dim if prototypes is not None else None)
    return runner, result


def run_overhead_training(args: argparse.Namespace) -> None:
    """Train ``args.overhead_run_config`` once, timed epoch by epoch, and print the result."""
    from mmengine.config import Config

    cfg = Config.fromfile(args.overhead_run_config)
    cfg.merge_from_dict(parse_options(args.overhead_run_options))
    _, result = train_timed(cfg, args.overhead_work_dir, args.seed, args.overhead_keep_monitor)
    print(WORKER_TAG + json.dumps(result), flush=True)
