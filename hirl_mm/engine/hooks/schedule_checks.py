"""Checks that a HIRL run's schedule can do HIRL at all, made before the first iteration.

Two settings otherwise give a run that exits 0 with nothing learned: a warm-up that outlasts
the training (never clusters: ``loss_semantic`` stays 0 and the checkpoints hold no
prototypes), and a data set smaller than one batch with ``drop_last=True`` (every epoch
has 0 iterations, yet clustering rounds and checkpoints still run on an untrained network).
"""
from typing import Any, Optional

from mmengine import dist
from mmpretrain.utils import get_ori_model

from .pipeline_checks import PipelineCheckError

__all__ = ['ScheduleCheckError', 'clustering_epochs', 'check_clustering_schedule',
           'check_iterations_per_epoch', 'check_hirl_schedule']


class ScheduleCheckError(PipelineCheckError):
    """The training schedule of a run cannot train (or cannot do HIRL); found before
    the first iteration."""


def clustering_epochs(warmup_epochs: int, interval: int, start_epoch: int,
                      max_epochs: int) -> range:
    """The (0-based) epochs of this run before which the clustering hook clusters.

    Args:
        warmup_epochs (int): The hook's ``warmup_epochs``.
        interval (int): The hook's ``interval``.
        start_epoch (int): The epoch the run starts at (after a resume, the resumed one).
        max_epochs (int): ``train_cfg.max_epochs``.

    Returns:
        range: The clustering epochs in ``[start_epoch, max_epochs)``.
    """
    first = warmup_epochs
    if start_epoch > first:  # the first due epoch at or after start_epoch
        first += -(-(start_epoch - first) // interval) * interval
    return range(first, max_epochs, interval)


def check_clustering_schedule(warmup_epochs: int, interval: int, start_epoch: int,
                              max_epochs: int, has_prototypes: bool,
                              option: str = 'warmup_epochs') -> None:
    """Refuse a run that would never cluster and holds no prototypes to train on.

    Args:
        warmup_epochs (int): The hook's ``warmup_epochs``.
        interval (int): The hook's ``interval``.
        start_epoch (int): The epoch the run starts at.
        max_epochs (int): ``train_cfg.max_epochs``.
        has_prototypes (bool): Whether the model already holds prototypes (resumed).
        option (str): The ``--cfg-options`` key of the hook's warm-up, for the message.

    Raises:
        ScheduleCheckError: Naming ``warmup_epochs`` / ``max_epochs`` and the fix.
    """
    if len(clustering_epochs(warmup_epochs, interval, start_epoch, max_epochs)) > 0 \
            or has_prototypes:
        return
    raise ScheduleCheckError(
        f'HierarchicalClusteringHook warmup_epochs={warmup_epochs} (interval={interval}) '
        f'but train_cfg.max_epochs={max_epochs}: this run would never cluster, so '
        f'loss_semantic would stay 0 and every checkpoint would be plain SSL with empty '
        f'prototypes. Set the hook\'s warmup_epochs below max_epochs (e.g. '
        f'--cfg-options {option}={max(0, max_epochs // 10)}; the '
        f'reference warms up for 10% of the epochs) or train longer; to train the SSL '
        f'method alone, use its baseline config (configs/baselines/).')


def _loader_setting(loader_cfg: Optional[Any], key: str, default: Any) -> Any:
    """A train_dataloader setting from the config (a dict), else ``default``."""
    if isinstance(loader_cfg, dict):
        return loader_cfg.get(key, default)
    return default


def check_iterations_per_epoch(dataloader: Any, loader_cfg: Optional[Any] = None) -> None:
    """Refuse a training data loader that gives no iteration in an epoch.

    Args:
        dataloader: The built training data loader (``runner.train_dataloader``).
        loader_cfg (dict, optional): ``cfg.train_dataloader``, to name its settings.

    Raises:
        ScheduleCheckError: Naming the data set size, ``batch_size``, ``drop_last`` and the
            number of processes, and what to change.
    """
    try:
        num_iters = len(dataloader)
    except TypeError:  # an iterable data set without a length: nothing to check
        return
    if num_iters > 0:
        return
    world_size = dist.get_world_size()
    num_samples = len(dataloader.dataset)
    batch_size = dataloader.batch_size or _loader_setting(loader_cfg, 'batch_size', '?')
    drop_last = bool(getattr(dataloader, 'drop_last',
                             _loader_setting(loader_cfg, 'drop_last', False)))
    per_process = -(-num_samples // world_size)
    share = f'{num_samples} samples' if world_size == 1 else \
        f'{num_samples} samples, {per_process} per process over {world_size} processes'
    if num_samples == 0:
        fix = 'Check train_dataloader.dataset (data_root, ann_file, data_prefix).'
    else:
        fix = (f'Set train_dataloader.batch_size to at most {per_process}, or '
               f'train_dataloader.drop_last=False, or add data (check data_root / ann_file).')
    raise ScheduleCheckError(
        f'The training data loader gives 0 iterations per epoch ({share}, '
        f'train_dataloader.batch_size={batch_size}, drop_last={drop_last}): every epoch '
        f'would be empty, the network would never train, yet clustering rounds and '
        f'checkpoints would run. {fix}')


def check_hirl_schedule(runner: Any, warmup_epochs: int, interval: int) -> None:
    """Both checks, for HierarchicalClusteringHook before the first iteration (after a
    resume: the run's start epoch and resumed prototypes are known then).

    Args:
        runner (Runner): The runner about to train (epoch-based loop).
        warmup_epochs (int): The hook's ``warmup_epochs``.
        interval (int): The hook's ``interval``.

    Raises:
        ScheduleCheckError: If an epoch would have no iteration, or the run would never
            cluster.
    """
    check_iterations_per_epoch(runner.train_dataloader, runner.cfg.get('train_dataloader'))
    prototypes = get_ori_model(runner.model).prototypes
    check_clustering_schedule(warmup_epochs, interval, runner.epoch, runner.max_epochs,
                              bool(prototypes.ready), _warmup_option(runner.cfg))


def _warmup_option(cfg: Any) -> str:
    """``custom_hooks.<i>.warmup_epochs`` of the config's clustering hook."""
    for index, hook in enumerate(cfg.get('custom_hooks') or []):
        if isinstance(hook, dict) and str(hook.get('type', '')).endswith(
                'HierarchicalClusteringHook'):
            return f'custom_hooks.{index}.warmup_epochs'
    return 'warmup_epochs'
