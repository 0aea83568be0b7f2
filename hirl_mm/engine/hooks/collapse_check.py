"""Catch representation collapse after each clustering round.

A learning rate far too high need not make the loss NaN: the network can instead map every
image to (nearly) the same embedding. k-means then puts every image into one cluster (the
others empty) on every level, ``loss_semantic`` climbs, and the run would go on writing
useless checkpoints and exit 0. After every round HierarchicalClusteringHook calls
:func:`check_collapse` with the cluster sizes: a collapsed round logs a WARNING, and
``patience`` collapsed rounds in a row stop the run with :class:`RepresentationCollapseError`.

Settings: a top-level config key (all optional; shown with their defaults)::

    collapse_check = dict(
        max_cluster_fraction=0.9,  # collapsed: one finest-level cluster holds >= 90% ...
        max_empty_fraction=0.5,    # ... or >= half of the finest-level clusters are empty
        patience=2)                # collapsed rounds in a row that stop the run (0: warn only)

``collapse_check = None`` (or ``dict(enabled=False)``) turns the check off. Only the finest
level (level 0, the most clusters) is judged: a coarse level with few clusters may
legitimately hold most images in one group, and when level 0 collapses every level does.
k-means re-seeds empty clusters from large ones, so many empty clusters only remain when
the embeddings are (nearly) identical.
"""
from typing import Any, Dict, List, Optional, Sequence

from hirl_mm.clustering import format_cluster_size_stats

__all__ = ['RepresentationCollapseError', 'CollapseSettings', 'collapse_settings',
           'collapse_reason', 'check_collapse', 'COLLAPSE_INFO']

# Message-hub info (saved with checkpoints): consecutive collapsed rounds and the epoch of
# the first one, ``{'rounds': int, 'first_epoch': int | None}``.
COLLAPSE_INFO = 'hirl/collapsed_rounds'
_DEFAULTS = dict(max_cluster_fraction=0.9, max_empty_fraction=0.5, patience=2)


class RepresentationCollapseError(RuntimeError):
    """The embeddings collapsed: clustering found (nearly) one cluster, round after round."""


class CollapseSettings:
    """The ``collapse_check`` settings (see the module docstring).

    Args:
        enabled (bool): Whether to check at all. Defaults to True.
        max_cluster_fraction (float): A round is collapsed when one finest-level cluster
            holds at least this fraction of the samples. Defaults to 0.9.
        max_empty_fraction (float): ... or when at least this fraction of the finest-level
            clusters is empty. Defaults to 0.5.
        patience (int): Collapsed rounds in a row that stop the run; 0 only warns.
            Defaults to 2.
    """

    def __init__(self, enabled: bool = True, max_cluster_fraction: float = 0.9,
                 max_empty_fraction: float = 0.5, patience: int = 2) -> None:
        for name, value in (('max_cluster_fraction', max_cluster_fraction),
                            ('max_empty_fraction', max_empty_fraction)):
            if not 0 < value <= 1:
                raise ValueError(f'collapse_check.{name} must be in (0, 1], got {value}.')
        if patience < 0:
            raise ValueError(f'collapse_check.patience must be >= 0 (0: warn only), got '
                             f'{patience}.')
        self.enabled = enabled
        self.max_cluster_fraction = max_cluster_fraction
        self.max_empty_fraction = max_empty_fraction
        self.patience = patience


def collapse_settings(cfg: Any) -> CollapseSettings:
    """The settings of a run's config (its top-level ``collapse_check``).

    Args:
        cfg: The run's config (``runner.cfg``).

    Returns:
        CollapseSettings: Defaults for a config without the key; disabled for ``None``.
    """
    if 'collapse_check' in cfg and cfg['collapse_check'] is None:
        return CollapseSettings(enabled=False)
    given = dict(cfg.get('collapse_check') or {})
    unknown = set(given) - set(_DEFAULTS) - {'enabled'}
    if unknown:
        raise ValueError(f'collapse_check has unknown keys {sorted(unknown)}; known: '
                         f'{sorted(_DEFAULTS) + ["enabled"]}.')
    return CollapseSettings(**given)


def collapse_reason(stats: Sequence[Dict[str, float]],
                    settings: CollapseSettings) -> Optional[str]:
    """Why a round's clustering is collapsed, or None.

    Args:
        stats (Sequence[dict]): ``hirl_mm.clustering.cluster_size_stats`` of the round.
        settings (CollapseSettings): The thresholds.

    Returns:
        str | None: E.g. ``'one level-0 cluster holds 300 of 300 samples (100%)'``.
    """
    if not stats or stats[0]['num_clusters'] < 2 or stats[0]['num_points'] == 0:
        return None
    finest = stats[0]
    largest = finest['max_size'] / finest['num_points']
    empty = finest['num_empty'] / finest['num_clusters']
    reasons = []
    if largest >= settings.max_cluster_fraction:
        reasons.append(f'one level-0 cluster holds {finest["max_size"]} of '
                       f'{finest["num_points"]} samples ({largest:.0%})')
    if empty >= settings.max_empty_fraction:
        reasons.append(f'{finest["num_empty"]} of the {finest["num_clusters"]} level-0 '
                       f'clusters are empty')
    return ' and '.join(reasons) or None


def _loss_trend(message_hub: Any) -> str:
    """``loss_semantic``'s last logged value and its lowest since clustering began (it is
    0 during the warm-up), if logged."""
    buffer = message_hub.log_scalars.get('train/loss_semantic')
    values = buffer.data[0] if buffer is not None else []
    trained = [float(v) for v in values if v > 0]
    if len(trained) < 2:
        return ''
    return (f' loss_semantic is {trained[-1]:.3g} (lowest since clustering began: '
            f'{min(trained):.3g}).')


def _lr_text(runner: Any) -> str:
    try:
        lrs = runner.optim_wrapper.get_lr()['lr']
        return f'optim_wrapper.optimizer.lr (now {lrs[0]:.3g})'
    except Exception:  # an unusual optimizer wrapper: just name the setting
        return 'optim_wrapper.optimizer.lr'


def check_collapse(runner: Any, stats: List[Dict[str, float]]) -> None:
    """Judge one clustering round; warn, or stop after ``patience`` collapsed rounds.

    Every rank holds the same prototypes, so every rank decides the same.

    Args:
        runner (Runner): The training runner (its config, logger and message hub).
        stats (list[dict]): ``cluster_size_stats`` of the round just clustered.

    Raises:
        RepresentationCollapseError: After ``patience`` collapsed rounds in a row, naming
            the learning rate, the checkpoints affected and the settings.
    """
    settings = collapse_settings(runner.cfg)
    if not settings.enabled:
        return
    hub = runner.message_hub
    reason = collapse_reason(stats, settings)
    if reason is None:
        hub.update_info(COLLAPSE_INFO, dict(rounds=0, first_epoch=None))
        return
    streak = hub.get_info(COLLAPSE_INFO) or dict(rounds=0, first_epoch=None)
    rounds = int(streak.get('rounds') or 0) + 1
    first_epoch = streak.get('first_epoch')
    first_epoch = runner.epoch if first_epoch is None or rounds == 1 else first_epoch
    hub.update_info(COLLAPSE_INFO, dict(rounds=rounds, first_epoch=first_epoch))
    message = (
        f'HIRL: representation collapse at the clustering round before epoch '
        f'{runner.epoch + 1}: {reason} (collapsed rounds in a row: {rounds}).'
        f'{_loss_trend(hub)} The network maps (nearly) every image to the same embedding. '
        f'Likely cause: a learning rate far too high: lower {_lr_text(runner)} or add a '
        f'warm-up to param_scheduler. Cluster sizes:\n'
        f'{format_cluster_size_stats(stats)}')
    if settings.patience and rounds >= settings.patience:
        saved = (f'epoch_{first_epoch}.pth and later checkpoints hold the collapsed network'
                 if first_epoch else 'the network collapsed before any epoch ended')
        raise RepresentationCollapseError(
            f'{message}\nTraining stopped after {rounds} collapsed rounds in a row '
            f'(collapse_check patience={settings.patience}); {saved} (in '
            f'{runner.work_dir}). Restart with a lower lr, from scratch or from an earlier '
            f'checkpoint. Thresholds: collapse_check=dict(max_cluster_fraction='
            f'{settings.max_cluster_fraction}, max_empty_fraction='
            f'{settings.max_empty_fraction}, patience={settings.patience}); patience=0 '
            f'only warns, collapse_check=None turns the check off.')
    runner.logger.warning(
        f'{message}\nThe run stops after {settings.patience} collapsed rounds in a row '
        f'(collapse_check patience).' if settings.patience else message)
