"""DINO / iBOT ``teacher_neck_init``: the HIRL authors' teacher head (own random init,
averaged from the first step) against DINO's / iBOT's full copy."""
import math

import pytest
import torch
from mmengine.config import Config

import hirl_mm  # noqa: F401
from hirl_mm.registry import MODELS
from test_dino import CONFIGS, _batch
from test_dino import _model as dino_model

pytestmark = pytest.mark.usefixtures('single_thread')

RATE = 0.1  # 1 - m at the first step (base_momentum)


def _model(name: str, teacher_neck_init: str, shared_head: bool = True):
    neck = dict(shared_head=shared_head) if name == 'iBOT' else None
    return dino_model(name, base_momentum=RATE, neck=neck, teacher_neck_init=teacher_neck_init)


def _params(module: torch.nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


@pytest.mark.parametrize('name,shared_head', [('DINO', True), ('iBOT', True),
                                              ('iBOT', False)])
def test_independent_teacher_neck_is_its_own_init_averaged_at_the_first_step(
        name, shared_head):
    model = _model(name, 'independent', shared_head)
    teacher_backbone, teacher_neck = model.teacher.module
    for key, value in model.backbone.state_dict().items():  # the backbone is copied
        torch.testing.assert_close(teacher_backbone.state_dict()[key], value, rtol=0, atol=0)
    student_neck = _params(model.neck)
    own_init = _params(teacher_neck)
    assert set(own_init) == set(student_neck)
    if not shared_head:
        assert any(k.startswith('patch_last_layer') for k in own_init)
    for key, value in own_init.items():
        if value.unique().numel() == 1:  # constant inits (zero biases, gain 1): equal
            continue
        assert not torch.equal(value, student_neck[key]), key  # its own draw
    student_backbone = _params(model.backbone)

    views, samples = _batch(masked=True)
    model.loss(views, samples)  # step 1: the update at its start averages, not copies

    # CosineEMA at step 0: 1 - m = RATE * (cos(0) + 1) / 2 = RATE.
    assert math.isclose(RATE * (math.cos(0) + 1) / 2, RATE)
    for key, value in teacher_neck.named_parameters():
        expected = (1 - RATE) * own_init[key] + RATE * student_neck[key]
        torch.testing.assert_close(value, expected)
    for key, value in teacher_backbone.named_parameters():
        torch.testing.assert_close(value, student_backbone[key])  # m*s + (1-m)*s


@pytest.mark.parametrize('name', ['DINO', 'iBOT'])
def test_copy_is_unchanged_a_full_copy_and_a_copying_first_step(name):
    model = _model(name, 'copy')
    student = torch.nn.Sequential(model.backbone, model.neck).state_dict()
    for key, value in model.teacher.module.state_dict().items():
        torch.testing.assert_close(value, student[key], rtol=0, atol=0)
    with torch.no_grad():  # a teacher that differs: the first update must copy anyway
        for p in model.teacher.module.parameters():
            p.add_(1.)
    views, samples = _batch(masked=True)
    model.loss(views, samples)
    student = dict(torch.nn.Sequential(model.backbone, model.neck).named_parameters())
    for key, value in model.teacher.module.named_parameters():
        torch.testing.assert_close(value, student[key], rtol=0, atol=0)


def test_invalid_choice_is_refused_at_build_naming_the_choices():
    cfg = Config.fromfile(CONFIGS['DINO']).model
    cfg.teacher_neck_init = 'random'
    with pytest.raises(ValueError, match=r"teacher_neck_init='random'.*'copy', 'independent'"):
        MODELS.build(cfg)
