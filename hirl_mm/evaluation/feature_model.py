"""The model the frozen-feature protocols embed images with: a backbone, loaded exactly.

The model is ``cfg.model.backbone`` (any mmpretrain backbone; its ``init_cfg`` is ignored)
with ``cfg.model.data_preprocessor`` (or mmpretrain's top-level ``data_preprocessor``;
default ``ClsDataPreprocessor``). The embedding of an image is the globally pooled last
stage (CNN) or the [CLS] token (ViT), as HIRL's backbone embedding
(:func:`hirl_mm.models.utils.embedding.backbone_embedding`).

The weights come from any checkpoint whose state dict holds the backbone under
``backbone.`` (hirl_mm or plain mmpretrain pre-training, a classifier): every backbone
tensor must be there and every ``backbone.*`` tensor must be used
(:func:`hirl_mm.utils.pretrained.verify_pretrained_loading`), otherwise loading stops.
"""
import copy
from typing import Dict, Optional

from mmengine.config import Config
from mmengine.model import BaseModel
from torch import Tensor, nn

from hirl_mm.models.utils.embedding import backbone_embedding
from hirl_mm.models.utils.embedding_encoder import call_unmasked
from hirl_mm.registry import MODELS
from hirl_mm.utils.pretrained import (BACKBONE_PREFIX, PretrainedLoadingError,
                                      refuse_teacher_student_checkpoint,
                                      verify_pretrained_state)
from .checkpoint_reading import load_checkpoint_state

__all__ = ['BackboneFeatureModel', 'build_feature_model', 'load_backbone_weights']


class BackboneFeatureModel(BaseModel):
    """A backbone and its data preprocessor; ``embed`` gives one vector per image.

    Args:
        backbone (nn.Module): The backbone.
        data_preprocessor (nn.Module): Normalises and batches the inputs.
    """

    def __init__(self, backbone: nn.Module, data_preprocessor: nn.Module) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.backbone = backbone

    def embed(self, inputs: Tensor) -> Tensor:
        """Un-normalised embeddings of a preprocessed batch.

        Args:
            inputs (Tensor): ``[B, C, H, W]`` preprocessed images.

        Returns:
            Tensor: ``[B, D]`` pooled backbone output.
        """
        return backbone_embedding(call_unmasked(self.backbone, inputs))

    def forward(self, inputs: Tensor, data_samples: Optional[list] = None,
                mode: str = 'tensor') -> Tensor:
        """Embed ``inputs`` (only ``mode='tensor'`` exists)."""
        if mode != 'tensor':
            raise ValueError(f'{type(self).__name__} only embeds images (mode="tensor").')
        return self.embed(inputs)


def build_feature_model(cfg: Config) -> BackboneFeatureModel:
    """Build the backbone and data preprocessor named by an evaluation config.

    Args:
        cfg (Config): Needs ``model.backbone``; the preprocessor is
            ``model.data_preprocessor``, else the top-level ``data_preprocessor``, else a
            ``ClsDataPreprocessor`` with its defaults. Call within the config's default scope.

    Returns:
        BackboneFeatureModel: On CPU, with random weights (see :func:`load_backbone_weights`).

    Raises:
        ValueError: If the config has no ``model.backbone``.
    """
    model_cfg = cfg.get('model') or {}
    if 'backbone' not in model_cfg:
        raise ValueError('The evaluation config needs model.backbone (e.g. mmpretrain\'s '
                         "dict(type='ResNet', depth=50)); see configs/benchmarks/"
                         'classification/knn/knn_imagenet.py.')
    backbone_cfg = copy.deepcopy(model_cfg['backbone'])
    backbone_cfg.pop('init_cfg', None)  # the weights come from the checkpoint, checked
    pre_cfg = model_cfg.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    pre_cfg = copy.deepcopy(dict(pre_cfg))
    pre_cfg.setdefault('type', 'ClsDataPreprocessor')
    return BackboneFeatureModel(MODELS.build(backbone_cfg), MODELS.build(pre_cfg))


def load_backbone_weights(model: BackboneFeatureModel, checkpoint: str,
                          state_dict: Optional[Dict[str, Tensor]] = None) -> int:
    """Load the ``backbone.*`` weights of ``checkpoint`` into ``model.backbone``, exactly.

    Args:
        model (BackboneFeatureModel): The model to fill.
        checkpoint (str): Path or URL of the checkpoint.
        state_dict (dict, optional): Its state dict if already loaded (or prepared,
            e.g. a DINO teacher's backbone written as ``backbone.*``); used as it is.

    Returns:
        int: The number of loaded tensors.

    Raises:
        PretrainedLoadingError: If a backbone key is missing, a ``backbone.*`` key is used
            by nothing, or a shape differs.
    """
    if state_dict is None:  # read once; a raw DINO / iBOT checkpoint is refused
        state_dict = load_checkpoint_state(checkpoint)
        refuse_teacher_student_checkpoint(checkpoint, state_dict)
    verify_pretrained_state(model, state_dict, ['backbone'], checkpoint)
    backbone_state = {k[len(BACKBONE_PREFIX):]: v for k, v in state_dict.items()
                      if k.startswith(BACKBONE_PREFIX)}
    try:
        model.backbone.load_state_dict(backbone_state, strict=True)
    except RuntimeError as error:  # e.g. shapes differ: another width or depth
        raise PretrainedLoadingError(
            f'The backbone weights of {checkpoint} do not fit the configured backbone: '
            f'{error}') from error
    return len(backbone_state)
