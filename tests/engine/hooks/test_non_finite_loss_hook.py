"""NonFiniteLossHook: a diverging run stops at once, before writing a NaN checkpoint, with
a message naming the likely causes (real short trainings)."""
import glob
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from hirl_mm.engine.hooks import NonFiniteLossError, NonFiniteLossHook
from toy_training import runner_config

pytestmark = pytest.mark.usefixtures('single_thread')

CONFIGS = os.path.join(os.path.dirname(__file__), '..', '..', '..', 'configs')


class Regression(BaseModel):
    """A linear regression; in ``nan_iters`` (0-based) its loss is NaN but its update
    leaves the weights finite (as a skipped mixed-precision step does)."""

    def __init__(self, nan_iters=()) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.nan_iters = set(nan_iters)
        self.calls = 0

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.linear(inputs)
        if mode != 'loss':
            return out
        loss = (out - 3).pow(2).mean()
        if self.calls in self.nan_iters:  # a NaN value whose gradients are all zero
            loss = (out * 0).sum() + float('nan')
        self.calls += 1
        return dict(loss=loss)


def _run(tmp_path, model, hook, lr=0.01, max_epochs=2, batch_size=4):
    runner = Runner(**runner_config(tmp_path, model, [hook], name='nonfinite',
                                    optimizer=dict(type='SGD', lr=lr), max_epochs=max_epochs,
                                    batch_size=batch_size, shuffle=False))
    return runner


def test_divergence_stops_before_a_nan_checkpoint(tmp_path):
    # lr 1e20: the second step overflows float32; the weights turn inf / nan at once.
    runner = _run(tmp_path, Regression(), NonFiniteLossHook(max_consecutive=5), lr=1e20)
    with pytest.raises(NonFiniteLossError) as error:
        runner.train()
    message = str(error.value)
    assert 'loss is not finite' in message and 'non-finite model parameters' in message
    for cause in ('learning rate too high', 'fp16 overflow', 'bad input data'):
        assert cause in message
    # It stopped in the first epoch (2 iterations), before that epoch's checkpoint.
    assert runner.iter < 2 and runner.epoch == 0
    assert glob.glob(os.path.join(tmp_path, '*.pth')) == []


def test_stops_after_max_consecutive_non_finite_iterations(tmp_path):
    # batch 2: 4 iterations per epoch; iterations 5, 6 and 7 (0-based) give NaN losses.
    runner = _run(tmp_path, Regression(nan_iters=(5, 6, 7)), NonFiniteLossHook(3),
                  batch_size=2, max_epochs=3)
    with pytest.raises(NonFiniteLossError, match='3 iterations in a row'):
        runner.train()
    assert runner.iter == 7  # stopped in iteration 8 (1-based), inside epoch 2
    assert sorted(os.path.basename(p) for p in glob.glob(os.path.join(tmp_path, '*.pth'))) \
        == ['epoch_1.pth']
    state = torch.load(os.path.join(tmp_path, 'epoch_1.pth'), map_location='cpu')
    assert all(torch.isfinite(v).all() for v in state['state_dict'].values())


def test_isolated_non_finite_iterations_with_intact_weights_are_tolerated(tmp_path):
    runner = _run(tmp_path, Regression(nan_iters=(1, 3, 5)), NonFiniteLossHook(2),
                  batch_size=2, max_epochs=2)
    runner.train()
    assert runner.iter == 8


def test_bad_setting():
    with pytest.raises(ValueError, match='max_consecutive'):
        NonFiniteLossHook(0)


@pytest.mark.parametrize('config', [
    'hirl/simclr_r50.py', 'hirl/mocov2_r50.py', 'hirl/byol_r50.py', 'hirl/simsiam_r50.py',
    'hirl/swav_r50.py', 'hirl/barlowtwins_r50.py', 'hirl/dino_vit-b16.py',
    'hirl/ibot_vit-b16.py', 'hirl/mocov3_vit-b16.py', 'hirl/beit_vit-b16.py',
    'hirl/dino_vit-b16_8xb128.py', 'hirl/ibot_vit-b16_8xb128.py',
    'baselines/dino_vit-base-p16_32xb32-amp-coslr-400e_in1k.py',
    'baselines/ibot_vit-base-p16_32xb32-amp-coslr-400e_in1k.py',
    'baselines/dino_vit-base-p16_8xb128-amp-coslr-400e_in1k.py',
    'baselines/ibot_vit-base-p16_8xb128-amp-coslr-400e_in1k.py',
    'demo/hirl_simclr_tiny-resnet18_fashion-mnist.py'])
def test_shipped_configs_turn_it_on(config):
    cfg = Config.fromfile(os.path.join(CONFIGS, config))
    assert cfg.default_hooks.non_finite_loss.type == 'NonFiniteLossHook'
