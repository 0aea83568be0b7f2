"""The teacher's backbone of a DINO / iBOT checkpoint, as a ``backbone.`` checkpoint.

DINO and iBOT evaluate and transfer the teacher (the EMA of the student), as the papers
do. In a hirl_mm checkpoint the student's backbone is ``backbone.*`` and the teacher's is
``teacher.module.0.*`` (``CosineEMA(nn.Sequential(backbone, neck))``). Every downstream
config (classification, mmdet, mmseg) loads ``backbone.*`` with an exact key check, so
the teacher is written under that prefix, without the pre-training-only ``mask_token``.
"""
from typing import Dict

from torch import Tensor

__all__ = ['TEACHER_BACKBONE_PREFIX', 'PRETRAIN_ONLY_KEYS', 'teacher_backbone_state',
           'has_teacher_backbone']

TEACHER_BACKBONE_PREFIX = 'teacher.module.0.'
# Backbone parameters only pre-training uses: iBOT's learned mask embedding.
PRETRAIN_ONLY_KEYS = ('mask_token', )


def teacher_backbone_state(state_dict: Dict[str, Tensor], source: str = 'teacher',
                           drop_pretrain_only: bool = True) -> Dict[str, Tensor]:
    """The ``backbone.*`` state dict of a DINO / iBOT checkpoint's teacher (or student).

    Args:
        state_dict (dict[str, Tensor]): The checkpoint's state dict.
        source (str): ``'teacher'`` (what the papers evaluate) or ``'student'``.
        drop_pretrain_only (bool): Leave out iBOT's ``mask_token`` (for a downstream
            ``VisionTransformer``); keep it to load the pre-training backbone class.

    Returns:
        dict[str, Tensor]: ``backbone.<name>`` tensors, pre-training-only keys dropped.

    Raises:
        KeyError: If the state dict has no such backbone (names what it has instead).
    """
    if source not in ('teacher', 'student'):
        raise ValueError(f"source must be 'teacher' or 'student', got {source!r}.")
    prefix = TEACHER_BACKBONE_PREFIX if source == 'teacher' else 'backbone.'
    backbone = {key[len(prefix):]: value for key, value in state_dict.items()
                if key.startswith(prefix)}
    if not backbone:
        roots = sorted({key.split('.')[0] for key in state_dict})
        raise KeyError(f'No {source} backbone under {prefix!r} in the checkpoint (its '
                       f'top-level modules: {roots}); is it a DINO / iBOT checkpoint of '
                       'hirl_mm?')
    return {f'backbone.{key}': value for key, value in backbone.items()
            if not (drop_pretrain_only and key in PRETRAIN_ONLY_KEYS)}


def has_teacher_backbone(state_dict: Dict[str, Tensor]) -> bool:
    """Whether a state dict is a DINO / iBOT checkpoint's (it holds a teacher backbone)."""
    return any(key.startswith(TEACHER_BACKBONE_PREFIX) for key in state_dict)
