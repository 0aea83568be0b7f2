"""The HIRL pre-training model rebuilt for evaluation: it embeds images in the space its
prototypes were clustered in.

HIRL clusters the embedding named by its ``embedding`` option (the neck's output by
default; the momentum encoder's for MoCo / BYOL), which the backbone alone cannot give.
To score the learned levels, evaluation rebuilds the pre-training model from its config
(the one the checkpoint records, or one passed on the command line), loads the whole
checkpoint into it strictly and embeds images with ``model.extract_clustering_embedding``
after the model's own data preprocessor.
"""
import copy
from typing import Dict

from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch import Tensor, nn

from hirl_mm.registry import MODELS
from hirl_mm.utils.pretrained import PretrainedLoadingError
from .feature_cache import plain_config

__all__ = ['build_pretrain_model', 'load_pretrain_model', 'pretrain_model_key']


def build_pretrain_model(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` in the config's default scope (no weights initialised).

    Args:
        cfg (Config): A HIRL pre-training config.

    Returns:
        nn.Module: On CPU, with random weights.

    Raises:
        PretrainedLoadingError: If the config has no model, or its model cannot embed
            images for clustering (not a HIRL model).
    """
    if not cfg.get('model'):
        raise PretrainedLoadingError('The pre-training config has no model.')
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'hirl_mm')):
        model = MODELS.build(copy.deepcopy(cfg.model))
    if not callable(getattr(model, 'extract_clustering_embedding', None)):
        raise PretrainedLoadingError(
            f'The pre-training model {type(model).__name__} has no '
            f'extract_clustering_embedding: the config is not a HIRL pre-training config.')
    return model


def _mismatches(model: nn.Module, state_dict: Dict[str, Tensor]) -> str:
    """A few lines on how a state dict differs from a model's (empty if only in values).

    Args:
        model (nn.Module): The model the state dict was loaded into.
        state_dict (dict): The checkpoint's state dict.

    Returns:
        str: Counts and up to three examples of differing shapes, missing and unexpected
        keys.
    """
    own = model.state_dict()
    shapes = [(key, tuple(value.shape), tuple(own[key].shape))
              for key, value in state_dict.items()
              if key in own and hasattr(value, 'shape') and value.shape != own[key].shape]
    missing = [key for key in own if key not in state_dict]
    unexpected = [key for key in state_dict if key not in own]
    parts = []
    if shapes:
        parts.append(f'{len(shapes)} tensor(s) differ in shape, e.g. ' + '; '.join(
            f'{key}: checkpoint {a} vs model {b}' for key, a, b in shapes[:3]))
    if missing:  # torch's words, which users search for
        parts.append(f'Missing key(s) (in the model, not the checkpoint): {len(missing)}, '
                     f'e.g. {missing[:3]}')
    if unexpected:
        parts.append(f'Unexpected key(s) (in the checkpoint, not the model): '
                     f'{len(unexpected)}, e.g. {unexpected[:3]}')
    return '; '.join(parts)


def load_pretrain_model(cfg: Config, state_dict: Dict[str, Tensor], checkpoint: str,
                        device: str = 'cpu') -> nn.Module:
    """The pre-training model with the whole checkpoint loaded strictly, ready to embed.

    Args:
        cfg (Config): The pre-training config of the checkpoint.
        state_dict (dict): The checkpoint's state dict.
        checkpoint (str): Its path or URL (for messages).
        device (str): Where the model goes.

    Returns:
        nn.Module: The HIRL model on ``device``, in eval mode.

    Raises:
        PretrainedLoadingError: If a key is missing or unexpected, a shape differs or the
            prototypes' space differs from the model's.
    """
    model = build_pretrain_model(cfg)
    try:
        model.load_state_dict(state_dict, strict=True)
    except (RuntimeError, ValueError) as error:
        # A ValueError is the model's own check (e.g. the prototypes' space), said well;
        # torch's RuntimeError lists every mismatched tensor (hundreds of lines).
        detail = str(error) if isinstance(error, ValueError) else \
            _mismatches(model, state_dict) or str(error)
        raise PretrainedLoadingError(
            f'{checkpoint} does not fit its pre-training model ({cfg.model.get("type")}, '
            f'embedding={cfg.model.get("embedding", "neck")!r}) exactly: '
            f'{detail.rstrip(".")}. Use the config the checkpoint was trained with '
            f'(tools/train.py keeps a copy in its work directory).') from None
    model.to(device)
    model.eval()
    return model


def pretrain_model_key(cfg: Config) -> dict:
    """What defines the clustering embedding of a pre-training config (a cache key)."""
    return dict(features='extract_clustering_embedding',
                model=plain_config(cfg.get('model')))
