"""Read an evaluated checkpoint: its state dict and the pre-training config it records.

mmengine's runner saves ``{'state_dict', 'meta', ...}``, with the run's full config text
in ``meta['cfg']`` (``Config.pretty_text``); plain state-dict files are accepted too.
"""
from typing import Any, Dict, Optional

from mmengine.config import Config
from mmengine.runner.checkpoint import _load_checkpoint
from torch import Tensor

from hirl_mm.utils.launch import check_file_exists
from hirl_mm.utils.pretrained import PretrainedLoadingError

__all__ = ['load_checkpoint_file', 'load_checkpoint_state', 'checkpoint_state',
           'checkpoint_meta', 'pretrain_config']


def load_checkpoint_file(checkpoint: str) -> Dict[str, Any]:
    """The whole content of a checkpoint file, on CPU.

    Args:
        checkpoint (str): Local path or URL.

    Returns:
        dict: What the file holds (``state_dict`` and ``meta`` for mmengine checkpoints,
        or the state dict itself).

    Raises:
        PretrainedLoadingError: If the file does not hold a dict.
    """
    loaded = _load_checkpoint(checkpoint, map_location='cpu')
    if not isinstance(loaded, dict):
        raise PretrainedLoadingError(f'{checkpoint} does not hold a state dict.')
    return loaded


def checkpoint_state(loaded: Dict[str, Any]) -> Dict[str, Tensor]:
    """The state dict of a loaded checkpoint: its ``state_dict`` entry, or itself."""
    return loaded.get('state_dict', loaded)


def checkpoint_meta(loaded: Dict[str, Any]) -> Dict[str, Any]:
    """The ``meta`` entry of a loaded checkpoint (empty when it has none)."""
    meta = loaded.get('meta') if 'state_dict' in loaded else None
    return meta if isinstance(meta, dict) else {}


def load_checkpoint_state(checkpoint: str) -> Dict[str, Tensor]:
    """The state dict of a checkpoint (its ``state_dict`` entry, or the whole file).

    Args:
        checkpoint (str): Local path or URL.

    Returns:
        dict[str, Tensor]: On CPU.
    """
    return checkpoint_state(load_checkpoint_file(checkpoint))


def pretrain_config(meta: Dict[str, Any], fallback: Optional[str] = None
                    ) -> Optional[Config]:
    """The pre-training config of a checkpoint: the one it records, else ``fallback``.

    Args:
        meta (dict): The checkpoint's ``meta`` (see :func:`checkpoint_meta`); its ``cfg``
            is the run's ``Config.pretty_text``.
        fallback (str, optional): Path of the pre-training config, used when the
            checkpoint records none.

    Returns:
        Config | None: None when the checkpoint records no config and there is no
        fallback.

    Raises:
        MissingInputError: If the fallback is needed and does not exist.
    """
    text = meta.get('cfg')
    if isinstance(text, str) and text.strip():
        return Config.fromstring(text, '.py')
    if fallback is None:
        return None
    check_file_exists(fallback, 'Pre-training config', 'Pass the config the checkpoint '
                      'was trained with.')
    return Config.fromfile(fallback)
