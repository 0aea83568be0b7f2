"""Train a model from an mmengine config (mmpretrain 1.x conventions).

Examples::

    python tools/train.py configs/hirl/<config>.py
    python tools/train.py CONFIG --resume                 # resume the latest in work_dir
    python tools/train.py CONFIG --resume work_dirs/x/epoch_10.pth
    python tools/train.py CONFIG --check-images          # list unreadable images first
    bash tools/dist_train.sh CONFIG 8                     # 8 processes (gloo on CPU)
"""
import argparse
import logging
import sys
from copy import deepcopy
from typing import List, Optional

import torch
# hirl_mm first: it registers our components and allow-lists mmengine's checkpoint types for
# torch.load's weights-only mode (needed by --resume under torch >= 2.6).
import hirl_mm  # noqa: F401
from mmengine.config import Config, ConfigDict
from mmengine.device import get_device
from mmpretrain.utils import get_ori_model

from hirl_mm.datasets.image_check import UnreadableImageError
from hirl_mm.engine.hooks.atomic_checkpoint_hook import use_atomic_checkpoint_hook
from hirl_mm.engine.hooks.collapse_check import RepresentationCollapseError
from hirl_mm.engine.hooks.pipeline_checks import PipelineCheckError
from hirl_mm.engine.hooks.schedule_checks import check_iterations_per_epoch
from hirl_mm.utils.cfg_options import CfgOptionsAction
from hirl_mm.utils.dist_timeout import collective_timeout_hint, set_default_dist_timeout
from hirl_mm.utils.launch import (DATALOADER_FIELDS, MissingInputError, add_launcher_args,
                                  build_runner, check_file_exists, default_work_dir,
                                  drop_collate_fn_scopes, set_local_rank_env, setup_launcher)
from hirl_mm.utils.pretrained import (PretrainedLoadingError, inject_pretrained,
                                      verify_pretrained_loading)
from hirl_mm.utils.resume_checks import find_resume_checkpoint

# Errors whose message says all (cause and fix): printed without a traceback.
USAGE_ERRORS = (MissingInputError, PretrainedLoadingError, PipelineCheckError,
                UnreadableImageError, RepresentationCollapseError)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``argv`` defaults to ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(description='Train a model (hirl_mm / mmpretrain)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint; without a path, resume from the latest '
        'checkpoint in the work directory (refused if there is none: see '
        '--allow-fresh-start)')
    parser.add_argument(
        '--allow-fresh-start',
        action='store_true',
        help='with --resume and no checkpoint in the work directory, start from epoch 0 '
        'instead of stopping (for job scripts that always pass --resume)')
    parser.add_argument(
        '--check-images',
        action='store_true',
        help='before the first iteration, check that every image file of the training set '
        'can be read (a few seconds per 10k images) and list all that cannot '
        '(ImageCheckHook)')
    parser.add_argument(
        '--amp', action='store_true', help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--no-validate', action='store_true', help='do not evaluate during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual total batch size over '
        '`auto_scale_lr.base_batch_size` of the config')
    parser.add_argument(
        '--no-pin-memory', action='store_true', help='disable pin_memory in dataloaders')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='disable persistent_workers in dataloaders')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=CfgOptionsAction,
        help='override config settings, key=value pairs merged into the config, e.g. '
        'train_cfg.max_epochs=10 or key="[a,b]" for lists (quotes needed, no spaces)')
    parser.add_argument(
        '--pretrained',
        metavar='CKPT',
        help='initialise the backbone (and every module marked with init_cfg=dict('
        "type='Pretrained', prefix='backbone.')) from the backbone.* weights of this "
        'pre-trained checkpoint; training stops unless they fit exactly')
    add_launcher_args(parser)
    args = parser.parse_args(argv)
    set_local_rank_env(args.local_rank)
    return args


def _set_default_dataloader_cfg(cfg: Config, args: argparse.Namespace) -> None:
    """mmpretrain's dataloader defaults (default_collate, pinned memory, persistent workers),
    overridden by the config and then by ``--no-pin-memory/--no-persistent-workers``.

    ``default_collate`` is only the default of mmpretrain / hirl_mm configs: mmdet and mmseg
    batch images of different sizes and rely on mmengine's ``pseudo_collate``.
    """
    own_scope = cfg.get('default_scope', 'mmpretrain') in ('mmpretrain', 'hirl_mm')
    for field in DATALOADER_FIELDS:
        if cfg.get(field) is None:
            continue
        loader = ConfigDict(
            # Pinning only helps host-to-GPU copies (and warns without a GPU).
            pin_memory=torch.cuda.is_available(),
            persistent_workers=True)
        if own_scope:
            loader.collate_fn = dict(type='default_collate')
        loader.update(deepcopy(cfg[field]))
        if args.no_pin_memory:
            loader.pin_memory = False
        if args.no_persistent_workers:
            loader.persistent_workers = False
        cfg[field] = loader


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge the command line into ``cfg`` (``--cfg-options`` last, so they win).

    Raises:
        MissingInputError: If the ``--resume`` checkpoint does not exist, or ``--resume``
            alone finds none in the work directory (without ``--allow-fresh-start``).
        ValueError: If an option does not fit the config or machine (``--amp`` without a
            GPU or with a custom optim wrapper, ``--auto-scale-lr`` without
            ``auto_scale_lr``).
    """
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    # work_dir priority: CLI > config > ./work_dirs/<config name>.
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = default_work_dir(args.config)

    if args.amp:
        if get_device() in ('cpu', 'mps'):
            raise ValueError('--amp uses AmpOptimWrapper, which mmengine supports on CUDA, '
                             'NPU, MLU or MUSA devices only; drop --amp to train on CPU.')
        wrapper_type = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper_type not in ('OptimWrapper', 'AmpOptimWrapper'):
            raise ValueError(f'--amp supports optim_wrapper.type OptimWrapper or '
                             f'AmpOptimWrapper, but the config uses {wrapper_type!r}; set '
                             'up mixed precision in the config instead.')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.resume == 'auto':
        cfg.resume = True  # the checkpoint is found below, in the final work_dir
        cfg.load_from = None
    elif args.resume is not None:
        check_file_exists(args.resume, 'Checkpoint to resume from',
                          'Pass an existing .pth file, or --resume alone to resume the '
                          'latest checkpoint of the work directory.')
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        if cfg.get('auto_scale_lr') is None:
            raise ValueError('--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=N)` '
                             'in the config (N: the total batch size the lr was tuned for).')
        cfg.auto_scale_lr.enable = True

    _set_default_dataloader_cfg(cfg, args)

    if args.check_images:
        cfg.custom_hooks = list(cfg.get('custom_hooks') or []) + [
            dict(type='ImageCheckHook')]
    # A kill during a checkpoint save must leave a resumable run.
    use_atomic_checkpoint_hook(cfg)

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.resume == 'auto':
        # Found here, not by mmengine, which silently starts afresh when there is none.
        found = find_resume_checkpoint(cfg.work_dir, args.allow_fresh_start)
        cfg.resume = found is not None
        cfg.load_from = found
    for field in DATALOADER_FIELDS:
        # torch's DataLoader refuses persistent_workers=True without worker processes
        # (e.g. num_workers=0 set to debug).
        if cfg.get(field) is not None and not cfg[field].get('num_workers', 0):
            cfg[field].persistent_workers = False
    drop_collate_fn_scopes(cfg)
    return cfg


def _log_to_file(logger: logging.Logger, text: str) -> None:
    """Write an ERROR record to the log file(s) of ``logger`` only (not the console)."""
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, text, None, None)
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def main(argv: Optional[List[str]] = None) -> None:
    """Train: parse arguments, load and merge the config, build the runner, run it."""
    args = parse_args(argv)
    check_file_exists(args.config, 'Config file',
                      'Pass the path of a config .py file (e.g. configs/...).')
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    pretrained_modules = []
    if args.pretrained:
        check_file_exists(args.pretrained, 'Pre-trained checkpoint',
                          'Pass the .pth file written by the pre-training run.')
        pretrained_modules = inject_pretrained(cfg.model, args.pretrained)
    timeout = set_default_dist_timeout(cfg, args.launcher)
    setup_launcher(cfg, args.launcher)
    runner = build_runner(cfg)
    if timeout is not None:
        runner.logger.info(f'Distributed collectives time out after {timeout} s '
                           f'(env_cfg.dist_cfg.timeout).')
    if pretrained_modules:
        loaded = verify_pretrained_loading(
            get_ori_model(runner.model), args.pretrained, pretrained_modules)
        runner.logger.info(f'Pre-trained weights of {args.pretrained} fit exactly: ' +
                           ', '.join(f'{name} ({n} tensors)' for name, n in loaded.items()))
    try:
        # Before mmengine builds the LR schedulers, which fail cryptically on 0 iterations.
        check_iterations_per_epoch(runner.train_dataloader, cfg.get('train_dataloader'))
        runner.train()
    except USAGE_ERRORS as error:
        _log_to_file(runner.logger, f'error: {error}')  # the console gets it at exit
        raise
    except Exception as error:
        hint = collective_timeout_hint(error, cfg)
        if hint is not None:
            runner.logger.error(hint)
        raise


if __name__ == '__main__':
    try:
        main()
    except USAGE_ERRORS as e:
        sys.exit(f'error: {e}')
