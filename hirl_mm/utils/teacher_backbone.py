"""The teacher's (or momentum encoder's) backbone of a checkpoint, as ``backbone.*``.

DINO and iBOT evaluate and transfer the teacher (the EMA of the student), as the papers
do. In a hirl_mm checkpoint the student's backbone is ``backbone.*`` and the teacher's is
``teacher.module.0.*`` (``CosineEMA(nn.Sequential(backbone, neck))``). Every downstream
config (classification, mmdet, mmseg) loads ``backbone.*`` with an exact key check, so
the teacher is written under that prefix, without the pre-training-only ``mask_token``.
The momentum encoders of mmpretrain's MoCo v3 (``momentum_encoder``) and BYOL
(``target_net``) are built the same way and can be written likewise (``source='momentum'``).
"""
from typing import Dict

from torch import Tensor, nn

__all__ = ['TEACHER_BACKBONE_PREFIX', 'MOMENTUM_BACKBONE_PREFIXES', 'PRETRAIN_ONLY_KEYS',
           'SOURCES', 'teacher_backbone_state', 'has_teacher_backbone', 'evaluated_backbone']

TEACHER_BACKBONE_PREFIX = 'teacher.module.0.'
# Averaged encoders built as CosineEMA(nn.Sequential(backbone, neck)): DINO / iBOT,
# MoCo v3, BYOL.
MOMENTUM_BACKBONE_PREFIXES = (TEACHER_BACKBONE_PREFIX, 'momentum_encoder.module.0.',
                              'target_net.module.0.')
SOURCES = ('teacher', 'momentum', 'student')
# Backbone parameters only pre-training uses: iBOT's learned mask embedding.
PRETRAIN_ONLY_KEYS = ('mask_token', )


def _prefix(state_dict: Dict[str, Tensor], source: str) -> str:
    if source == 'student':
        return 'backbone.'
    if source == 'teacher':
        return TEACHER_BACKBONE_PREFIX
    for prefix in MOMENTUM_BACKBONE_PREFIXES:
        if any(key.startswith(prefix) for key in state_dict):
            return prefix
    return MOMENTUM_BACKBONE_PREFIXES[1]


def teacher_backbone_state(state_dict: Dict[str, Tensor], source: str = 'teacher',
                           drop_pretrain_only: bool = True) -> Dict[str, Tensor]:
    """The ``backbone.*`` state dict of a checkpoint's teacher, momentum encoder or student.

    Args:
        state_dict (dict[str, Tensor]): The checkpoint's state dict.
        source (str): ``'teacher'`` (DINO / iBOT: what the papers evaluate),
            ``'momentum'`` (any averaged encoder: DINO / iBOT's teacher, MoCo v3's
            momentum encoder, BYOL's target network) or ``'student'`` (``backbone.*``).
        drop_pretrain_only (bool): Leave out iBOT's ``mask_token`` (for a downstream
            ``VisionTransformer``); keep it to load the pre-training backbone class.

    Returns:
        dict[str, Tensor]: ``backbone.<name>`` tensors, pre-training-only keys dropped.

    Raises:
        ValueError: If ``source`` is unknown.
        KeyError: If the state dict has no such backbone (names what it has instead).
    """
    if source not in SOURCES:
        raise ValueError(f'source must be one of {SOURCES}, got {source!r}.')
    prefix = _prefix(state_dict, source)
    backbone = {key[len(prefix):]: value for key, value in state_dict.items()
                if key.startswith(prefix)}
    if not backbone:
        roots = sorted({key.split('.')[0] for key in state_dict})
        raise KeyError(f'No {source} backbone under {prefix!r} in the checkpoint (its '
                       f'top-level modules: {roots}); is it a DINO / iBOT (or, for '
                       f"source='momentum', MoCo v3 / BYOL) checkpoint?")
    return {f'backbone.{key}': value for key, value in backbone.items()
            if not (drop_pretrain_only and key in PRETRAIN_ONLY_KEYS)}


def has_teacher_backbone(state_dict: Dict[str, Tensor]) -> bool:
    """Whether a state dict is a DINO / iBOT checkpoint's (it holds a teacher backbone)."""
    return any(key.startswith(TEACHER_BACKBONE_PREFIX) for key in state_dict)


def evaluated_backbone(model: nn.Module) -> nn.Module:
    """The backbone the papers evaluate: the teacher's for DINO / iBOT, else the model's.

    Args:
        model (nn.Module): A built (unwrapped) self-supervised model, HIRL or not.

    Returns:
        nn.Module: ``model.teacher.module[0]`` where the model has a teacher, else
        ``model.backbone``.
    """
    teacher = getattr(model, 'teacher', None)
    return teacher.module[0] if teacher is not None else model.backbone
