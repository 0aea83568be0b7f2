"""Command line and set-up shared by the frozen-feature protocols (knn.py, cluster_eval.py).

:func:`add_common_args` declares the arguments; :func:`setup_evaluation` reads the
evaluation config, starts the processes, reads the checkpoint and loads its backbone
exactly (:mod:`hirl_mm.evaluation.feature_model`). Each protocol then reads its own config
section (``knn_eval``, ``cluster_eval``, see the tools' docstrings), falling back to the
config's ``train_dataloader`` / ``val_dataloader`` data sets, so an mmpretrain
classification config (e.g. a linear-probe config) works as is.
"""
import argparse
from dataclasses import dataclass, field
from typing import Any, Dict

import torch.distributed as torch_dist
from mmengine import dist
from mmengine.config import Config, DictAction
from mmengine.device import get_device
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from torch import Tensor

from hirl_mm.utils.launch import (add_launcher_args, check_file_exists, set_local_rank_env,
                                  setup_launcher)
from .checkpoint_reading import checkpoint_meta, checkpoint_state, load_checkpoint_file
from .feature_cache import plain_config
from .feature_model import BackboneFeatureModel, build_feature_model, load_backbone_weights

__all__ = ['init_distributed', 'add_common_args', 'EvaluationSetup', 'setup_evaluation']


def init_distributed(cfg: Config, launcher: str) -> None:
    """Initialise torch.distributed for ``launcher`` as tools/train.py does.

    On a machine without GPU, :func:`hirl_mm.utils.launch.setup_launcher` initialises gloo;
    with a GPU, mmengine's ``init_dist`` is called with ``env_cfg.dist_cfg`` (default NCCL),
    which also pins each process to its GPU. ``launcher='none'`` does nothing.

    Args:
        cfg (Config): Its ``env_cfg.dist_cfg`` is used.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
    """
    setup_launcher(cfg, launcher)
    if launcher == 'none' or (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    dist_cfg = dict((cfg.get('env_cfg') or {}).get('dist_cfg') or {})
    backend = dist_cfg.pop('backend', 'nccl')
    dist.init_dist(launcher, backend, **dist_cfg)


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """The command-line arguments every frozen-feature protocol takes.

    ``config``, ``checkpoint``, ``--out``, ``--work-dir``, ``--cache-dir``,
    ``--batch-size``, ``--num-workers``, ``--cfg-options``, ``--launcher`` and
    ``--local-rank``.

    Args:
        parser (argparse.ArgumentParser): Gets the arguments.
    """
    parser.add_argument('config', help='evaluation config (model.backbone and data sets)')
    parser.add_argument('checkpoint', help='checkpoint holding the backbone under '
                        '"backbone." (hirl_mm or mmpretrain)')
    parser.add_argument('--out', help='JSON file for the results (default: '
                        '<work-dir or checkpoint folder>/<checkpoint name>_<protocol>.json)')
    parser.add_argument('--work-dir', help='folder for the default --out')
    parser.add_argument('--cache-dir', help='save the extracted features there, keyed by '
                        'checkpoint and data set, and read them back on the next run')
    parser.add_argument('--batch-size', type=int, help='images per batch per process '
                        '(overrides the config)')
    parser.add_argument('--num-workers', type=int, help='data-loading workers per process '
                        '(overrides the config)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    add_launcher_args(parser)


@dataclass
class EvaluationSetup:
    """What :func:`setup_evaluation` prepared.

    Attributes:
        cfg (Config): The merged evaluation config.
        model (BackboneFeatureModel): Backbone loaded from the checkpoint, on ``device``,
            in eval mode.
        state_dict (dict): The checkpoint's full state dict (CPU).
        device (str): Where the model runs.
        num_tensors (int): Number of backbone tensors loaded.
        meta (dict): The checkpoint's ``meta`` (``cfg``: the pre-training config text).
    """

    cfg: Config
    model: BackboneFeatureModel
    state_dict: Dict[str, Tensor]
    device: str
    num_tensors: int
    meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def model_cfg(self) -> dict:
        """The parts of the config that define the features (for the cache key)."""
        model = self.cfg.get('model') or {}
        return dict(backbone=plain_config(model.get('backbone')),
                    data_preprocessor=plain_config(model.get('data_preprocessor')
                                                   or self.cfg.get('data_preprocessor')))


def setup_evaluation(args: argparse.Namespace) -> EvaluationSetup:
    """Load the config, start the processes, build the model and load the backbone.

    Args:
        args (argparse.Namespace): From a parser set up by :func:`add_common_args`.

    Returns:
        EvaluationSetup: Ready to extract features, on every rank.

    Raises:
        MissingInputError: If the config or a local checkpoint does not exist.
        PretrainedLoadingError: If the backbone weights do not fit exactly.
    """
    set_local_rank_env(args.local_rank)
    check_file_exists(args.config, 'Config file', 'Pass an evaluation config, e.g. '
                      'configs/benchmarks/classification/knn/knn_imagenet.py.')
    check_file_exists(args.checkpoint, 'Checkpoint', 'Pass the .pth file of a pre-training '
                      'run (hirl_mm or mmpretrain).')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    init_distributed(cfg, args.launcher)
    model = build_feature_model(cfg)
    loaded = load_checkpoint_file(args.checkpoint)
    state_dict = checkpoint_state(loaded)
    num_tensors = load_backbone_weights(model, args.checkpoint, state_dict)
    device = get_device()
    model.to(device)
    model.eval()
    print_log(f'Backbone weights of {args.checkpoint} fit exactly ({num_tensors} tensors); '
              f'{dist.get_world_size()} process(es) on {device}.', logger='current')
    return EvaluationSetup(cfg=cfg, model=model, state_dict=state_dict, device=device,
                           num_tensors=num_tensors, meta=checkpoint_meta(loaded))
