"""teacher_backbone_state: which backbone of a checkpoint is written as ``backbone.*``."""
import pytest
import torch

from hirl_mm.utils.teacher_backbone import (evaluated_backbone, has_teacher_backbone,
                                           teacher_backbone_state)

T = torch.zeros(1)


def test_sources():
    dino = {'backbone.w': T, 'backbone.mask_token': T, 'teacher.module.0.w': T + 1,
            'teacher.module.0.mask_token': T, 'teacher.module.1.w': T}
    assert has_teacher_backbone(dino)
    assert teacher_backbone_state(dino) == {'backbone.w': T + 1}
    assert teacher_backbone_state(dino, 'momentum') == {'backbone.w': T + 1}
    assert set(teacher_backbone_state(dino, drop_pretrain_only=False)) == {
        'backbone.w', 'backbone.mask_token'}
    assert teacher_backbone_state(dino, 'student') == {'backbone.w': T}
    mocov3 = {'backbone.w': T, 'momentum_encoder.module.0.w': T + 2}
    assert not has_teacher_backbone(mocov3)
    assert teacher_backbone_state(mocov3, 'momentum') == {'backbone.w': T + 2}
    with pytest.raises(KeyError, match="top-level modules: \\['backbone', "
                                       "'momentum_encoder'\\]"):
        teacher_backbone_state(mocov3, 'teacher')
    with pytest.raises(ValueError, match='source must be one of'):
        teacher_backbone_state(dino, 'ema')


def test_evaluated_backbone_is_the_teachers_where_there_is_one():
    from mmpretrain.models import CosineEMA
    student = torch.nn.Linear(2, 2)
    plain = torch.nn.Module()
    plain.backbone = student
    assert evaluated_backbone(plain) is student
    distilled = torch.nn.Module()
    distilled.backbone = student
    distilled.teacher = CosineEMA(torch.nn.Sequential(student, torch.nn.Identity()))
    assert evaluated_backbone(distilled) is distilled.teacher.module[0]
    assert evaluated_backbone(distilled) is not student
