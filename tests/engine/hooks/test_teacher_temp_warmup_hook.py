"""TeacherTempWarmupHook: DINO's teacher-temperature schedule, checked against the reference
formula and through real short trainings (including a resume mid-schedule)."""
import os
from typing import Dict, List

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmpretrain.utils import get_ori_model
from torch import nn

from hirl_mm.engine.hooks.teacher_temp_warmup_hook import TeacherTempWarmupHook
from hirl_mm.registry import HOOKS
from toy_training import read_log, runner_config

pytestmark = pytest.mark.usefixtures('single_thread')


class ToyLoss(nn.Module):
    """Stands in for a DINO/iBOT loss: float temperatures plus a tensor buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.teacher_temp = 0.5  # deliberately off-schedule: the hook must overwrite it
        self.teacher_patch_temp = 0.5
        self.register_buffer('center', torch.zeros(1))


class ToyModel(BaseModel):
    """A linear layer whose loss reads the temperatures; every forward records them."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(4, 4)
        self.head = nn.Module()
        self.head.loss_module = ToyLoss()
        self.seen: List[tuple] = []

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.backbone(inputs)
        if mode == 'loss':
            loss_module = self.head.loss_module
            self.seen.append((loss_module.teacher_temp, loss_module.teacher_patch_temp))
            return dict(loss=(out / loss_module.teacher_temp).pow(2).mean())
        return out


class TempProbe(Hook):
    """Collects the temperatures the loss saw in each (0-based) epoch."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.by_epoch: Dict[int, set] = {}

    def after_train_epoch(self, runner) -> None:
        model = get_ori_model(runner.model)
        self.by_epoch[runner.epoch] = set(model.seen)
        model.seen.clear()


def dino_schedule(warmup_temp: float, temp: float, warmup_epochs: int,
                  nepochs: int) -> np.ndarray:
    """DINO's DINOLoss.teacher_temp_schedule, transcribed."""
    return np.concatenate((np.linspace(warmup_temp, temp, warmup_epochs),
                           np.ones(nepochs - warmup_epochs) * temp))


def make_runner(work_dir, max_epochs: int, hooks: list, **kwargs) -> Runner:
    """A ToyModel trained on the toy data in order, with a checkpoint every epoch."""
    return Runner(**runner_config(work_dir, ToyModel(), hooks, name='teacher_temp',
                                  max_epochs=max_epochs, shuffle=False,
                                  optimizer=dict(type='SGD', lr=0.01), **kwargs))


@pytest.mark.parametrize('warmup_epochs', [0, 1, 2, 5, 30])
def test_schedule_is_dinos(warmup_epochs):
    hook = TeacherTempWarmupHook(warmup_temp=0.04, temp=0.07, warmup_epochs=warmup_epochs)
    expected = dino_schedule(0.04, 0.07, warmup_epochs, nepochs=40)
    got = [hook.temperature_at(e) for e in range(40)]
    assert got == expected.tolist()  # bit for bit
    assert all(isinstance(v, float) for v in got)


@pytest.mark.parametrize('kwargs,match', [
    (dict(warmup_epochs=-1), 'warmup_epochs'),
    (dict(warmup_epochs=2.5), 'warmup_epochs'),
    (dict(temp=0.0), 'Temperatures'),
    (dict(attribute='head..teacher_temp'), 'dotted path'),
    (dict(attribute=''), 'dotted path'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TeacherTempWarmupHook(**kwargs)


def test_registered_with_scalar_name_from_the_attribute():
    hook = HOOKS.build(dict(type='TeacherTempWarmupHook',
                            attribute='head.loss_module.teacher_patch_temp'))
    assert isinstance(hook, TeacherTempWarmupHook)
    assert hook.scalar_name == 'train/teacher_patch_temp'


@pytest.mark.slow
def test_training_follows_the_schedule_for_two_temperatures(tmp_path):
    """iBOT's set-up: the [CLS] and patch temperatures each with its own hook."""
    probe = TempProbe()
    cls_hook = dict(type='TeacherTempWarmupHook', warmup_temp=0.04, temp=0.07,
                    warmup_epochs=3, attribute='head.loss_module.teacher_temp')
    patch_hook = dict(type='TeacherTempWarmupHook', warmup_temp=0.04, temp=0.06,
                      warmup_epochs=2, attribute='head.loss_module.teacher_patch_temp')
    runner = make_runner(tmp_path, max_epochs=4, hooks=[cls_hook, patch_hook, probe])
    runner.train()

    cls_expected = dino_schedule(0.04, 0.07, 3, 4)
    patch_expected = dino_schedule(0.04, 0.06, 2, 4)
    assert sorted(probe.by_epoch) == [0, 1, 2, 3]
    for epoch in range(4):  # one value per epoch, seen by every iteration of the epoch
        assert probe.by_epoch[epoch] == {(cls_expected[epoch], patch_expected[epoch])}

    # The message hub holds one value per epoch (printed as is by the logger).
    history, _ = runner.message_hub.get_scalar('train/teacher_temp').data
    assert history.tolist() == cls_expected.tolist()
    history, _ = runner.message_hub.get_scalar('train/teacher_patch_temp').data
    assert history.tolist() == patch_expected.tolist()
    log = read_log(runner)
    assert 'teacher_temp: 0.0700' in log and 'teacher_patch_temp: 0.0600' in log
    # Logged when it changes: 3 distinct [CLS] values and 2 distinct patch values.
    assert log.count('head.loss_module.teacher_temp = ') == 3
    assert log.count('head.loss_module.teacher_patch_temp = ') == 2


@pytest.mark.slow
def test_resume_mid_schedule_continues_the_schedule(tmp_path):
    hook = dict(type='TeacherTempWarmupHook', warmup_temp=0.04, temp=0.07, warmup_epochs=4)
    expected = dino_schedule(0.04, 0.07, 4, 5)
    first = TempProbe()
    make_runner(tmp_path, max_epochs=2, hooks=[hook, first]).train()
    assert first.by_epoch == {0: {(expected[0], 0.5)}, 1: {(expected[1], 0.5)}}

    resumed = TempProbe()
    runner = make_runner(tmp_path, max_epochs=5, hooks=[hook, resumed], resume=True,
                         load_from=os.path.join(tmp_path, 'epoch_2.pth'))
    runner.train()
    # The fresh model starts at 0.5; from its first resumed epoch (the 3rd) on, the loss
    # sees the value of that epoch, not a schedule restarted at epoch 0.
    assert resumed.by_epoch == {e: {(expected[e], 0.5)} for e in (2, 3, 4)}
    assert expected[2] not in (expected[0], 0.07)


@pytest.mark.slow
@pytest.mark.parametrize('attribute,error,match', [
    ('head.loss.teacher_temp', AttributeError, r'has no "head\.loss".*attribute='),
    ('head.loss_module.teacher_tmp', AttributeError, r'ToyLoss has no attribute "teacher_tmp"'),
    ('head.loss_module.center', TypeError, r'"head\.loss_module\.center" holds a Tensor'),
])
def test_bad_attribute_fails_at_before_train(tmp_path, attribute, error, match):
    probe = TempProbe()
    hook = dict(type='TeacherTempWarmupHook', attribute=attribute)
    runner = make_runner(tmp_path, max_epochs=1, hooks=[hook, probe])
    with pytest.raises(error, match=match):
        runner.train()
    assert probe.by_epoch == {} and get_ori_model(runner.model).seen == []


@pytest.mark.slow
def test_iteration_based_loop_is_refused(tmp_path):
    runner = make_runner(tmp_path, max_epochs=1, hooks=[dict(type='TeacherTempWarmupHook')],
                         train_cfg=dict(by_epoch=False, max_iters=2))
    with pytest.raises(TypeError, match='epoch-based train loop'):
        runner.train()
