"""The timeout of distributed collectives: a default for runs that set none, and a hint
when it strikes.

A process that hangs (a frozen data loader worker, a dead node, a deadlock) leaves the
others waiting in their next collective (a gradient all-reduce, a broadcast) until the
process group's timeout: torch's default is 30 minutes for gloo and 10 for NCCL.
``env_cfg.dist_cfg.timeout`` (seconds, as mmengine reads it) sets it. It must exceed the
longest time one process can legitimately spend between two collectives while the others
wait: a checkpoint written by rank 0, one step or, for HIRL, one clustering step: with the
sharded k-means (the default with more than one process) every k-means iteration is a
collective; with ``clusterer=dict(distributed=False)`` rank 0 clusters alone while the
others wait, so allow at least three times the "clustering ... s" the log prints for a
round. :data:`DEFAULT_DIST_TIMEOUT_S` is used when a distributed run sets none.
"""
import re
from typing import Any, Optional

from mmengine.config import ConfigDict

__all__ = ['DEFAULT_DIST_TIMEOUT_S', 'set_default_dist_timeout', 'collective_timeout_hint']

# 30 minutes: long enough for a clustering round of ImageNet-1k on rank 0 alone, bounded.
DEFAULT_DIST_TIMEOUT_S = 1800
# How gloo and NCCL word a collective that timed out (not, e.g., a DataLoader timeout).
_TIMEOUT = re.compile(r'Timed out waiting \d+ ?ms|Watchdog caught collective operation '
                      r'timeout|collective operation timeout', re.IGNORECASE)


def set_default_dist_timeout(cfg: Any, launcher: str) -> Optional[int]:
    """Give a distributed run without ``env_cfg.dist_cfg.timeout`` the default.

    Args:
        cfg (Config): The run's config, changed in place.
        launcher (str): ``'none'`` (one process: nothing to do) or the launcher.

    Returns:
        int | None: The timeout in seconds the run uses; None for one process.
    """
    if launcher == 'none':
        return None
    if cfg.get('env_cfg') is None:
        cfg.env_cfg = ConfigDict()
    if cfg.env_cfg.get('dist_cfg') is None:
        cfg.env_cfg.dist_cfg = ConfigDict()
    dist_cfg = cfg.env_cfg.dist_cfg
    if dist_cfg.get('timeout') is None:
        dist_cfg.timeout = DEFAULT_DIST_TIMEOUT_S
    return dist_cfg.timeout


def collective_timeout_hint(error: BaseException, cfg: Any) -> Optional[str]:
    """What to do when ``error`` is a collective that timed out, else None.

    Args:
        error (BaseException): What the run raised.
        cfg (Config): The run's config (for the timeout it used).

    Returns:
        str | None: The hint.
    """
    if not _TIMEOUT.search(str(error)):
        return None
    timeout = ((cfg.get('env_cfg') or {}).get('dist_cfg') or {}).get('timeout')
    return (f'error: a distributed collective timed out (env_cfg.dist_cfg.timeout='
            f'{timeout} s): another process stopped answering: it hung or died (see its '
            f'own output above), or it spent longer than the timeout on its own, e.g. in a '
            f'clustering round on rank 0 (clusterer distributed=False) or writing a '
            f'checkpoint. Fix the hung process, or raise the timeout, e.g. --cfg-options '
            f'env_cfg.dist_cfg.timeout=3600 (docs/en/troubleshooting.md says how to size '
            f'it). Resume with --resume.')
