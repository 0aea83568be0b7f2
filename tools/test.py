"""Test (evaluate) a checkpoint with the config's test loop (mmpretrain 1.x conventions).

Examples::

    python tools/test.py CONFIG work_dirs/x/epoch_10.pth
    python tools/test.py CONFIG CKPT --out preds.pkl                     # dump predictions
    python tools/test.py CONFIG CKPT --out metrics.json --out-item metrics
    bash tools/dist_test.sh CONFIG CKPT 8
"""
import argparse
import os.path as osp
import sys
from copy import deepcopy
from typing import Dict, List, Optional

import torch
# hirl_mm first: it registers our components and allow-lists mmengine's checkpoint types for
# torch.load's weights-only mode (torch >= 2.6).
import hirl_mm  # noqa: F401
import mmengine
from mmengine.config import Config, ConfigDict, DictAction

from hirl_mm.utils.launch import (MissingInputError, add_launcher_args, build_runner,
                                  check_file_exists, default_work_dir, drop_collate_fn_scopes,
                                  set_local_rank_env, setup_launcher)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``argv`` defaults to ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(description='Test a checkpoint (hirl_mm / mmpretrain)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file (local path or URL)')
    parser.add_argument(
        '--work-dir', help='the dir to save logs and the evaluation metrics')
    parser.add_argument(
        '--out',
        help='output file: predictions (.pkl/.pickle) or, with --out-item metrics, the '
        'metrics (.json/.yaml/.pkl)')
    parser.add_argument(
        '--out-item',
        choices=['metrics', 'pred'],
        help='what --out holds; defaults to the predictions')
    parser.add_argument(
        '--no-pin-memory', action='store_true', help='disable pin_memory in the dataloader')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value pairs merged into the config, e.g. '
        'test_dataloader.batch_size=32 or key="[a,b]" for lists (quotes needed, no spaces)')
    add_launcher_args(parser)
    args = parser.parse_args(argv)
    if args.out_item is not None and args.out is None:
        parser.error('--out-item needs --out FILE to say where to write it')
    if args.out is not None and args.out_item != 'metrics' and not args.out.endswith(
            ('.pkl', '.pickle')):
        parser.error(f'--out {args.out}: predictions are dumped as pickle, use a .pkl '
                     'file (or --out-item metrics for .json/.yaml)')
    set_local_rank_env(args.local_rank)
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge the command line into ``cfg`` (``--cfg-options`` last, so they win).

    Raises:
        ValueError: If the config has no test loop.
    """
    missing = [
        k for k in ('test_dataloader', 'test_evaluator', 'test_cfg') if cfg.get(k) is None
    ]
    if missing:
        raise ValueError(f'{args.config} has no {missing}: tools/test.py needs a test '
                         'dataloader, evaluator and test_cfg (e.g. test_cfg = dict()).')

    # work_dir priority: CLI > config > ./work_dirs/<config name>.
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(args.config)

    cfg.load_from = args.checkpoint
    cfg.resume = False

    loader = ConfigDict(
        pin_memory=torch.cuda.is_available(), collate_fn=dict(type='default_collate'))
    loader.update(deepcopy(cfg.test_dataloader))
    if args.no_pin_memory:
        loader.pin_memory = False
    cfg.test_dataloader = loader

    if args.out is not None and args.out_item != 'metrics':
        # Dump the predictions next to the real metrics.
        evaluators = cfg.test_evaluator
        if not isinstance(evaluators, (list, tuple)):
            evaluators = [evaluators]
        cfg.test_evaluator = [*evaluators, dict(type='DumpResults', out_file_path=args.out)]

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    drop_collate_fn_scopes(cfg)
    return cfg


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    """Test: parse arguments, load and merge the config, build the runner, run the test loop.

    Returns:
        dict: The metrics of the test evaluator.
    """
    args = parse_args(argv)
    check_file_exists(args.config, 'Config file',
                      'Pass the path of a config .py file (e.g. configs/...).')
    check_file_exists(args.checkpoint, 'Checkpoint',
                      'Pass an existing .pth file (e.g. work_dirs/<config>/epoch_N.pth).')
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    setup_launcher(cfg, args.launcher)
    runner = build_runner(cfg)
    metrics = runner.test()
    if args.out is not None and args.out_item == 'metrics' and runner.rank == 0:
        mmengine.mkdir_or_exist(osp.dirname(osp.abspath(args.out)))
        mmengine.dump(metrics, args.out)
    return metrics


if __name__ == '__main__':
    try:
        main()
    except MissingInputError as e:
        sys.exit(f'error: {e}')
