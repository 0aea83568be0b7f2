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
        raise PretrainedLoadingError(
            f'{checkpoint} does not fit its pre-training model ({cfg.model.get("type")}, '
            f'embedding={cfg.model.get("embedding", "neck")!r}) exactly: {error}') from error
    model.to(device)
    model.eval()
    return model


def pretrain_model_key(cfg: Config) -> dict:
    """What defines the clustering embedding of a pre-training config (a cache key)."""
    return dict(features='extract_clustering_embedding',
                model=plain_config(cfg.get('model')))
