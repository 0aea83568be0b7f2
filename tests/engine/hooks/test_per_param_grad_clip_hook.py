"""PerParamGradClipHook: DINO's per-parameter gradient clipping, against a direct
transcription of the formula, through a real training step, under a GradScaler and with
several optimizers."""
import copy
from types import SimpleNamespace
from typing import Dict, List

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.runner import Runner
from torch import nn

from hirl_mm.engine.hooks.per_param_grad_clip_hook import (PerParamGradClipHook,
                                                           clip_grads_per_param)
from hirl_mm.registry import HOOKS
from toy_training import ToyData, runner_config, stub_runner

pytestmark = pytest.mark.usefixtures('single_thread')


def dino_clip_gradients(params: List[nn.Parameter], clip: float) -> List[float]:
    """DINO's utils.clip_gradients, transcribed (over a parameter list)."""
    norms = []
    for p in params:
        if p.grad is not None:
            param_norm = p.grad.data.norm(2)
            norms.append(param_norm.item())
            clip_coef = clip / (param_norm + 1e-6)
            if clip_coef < 1:
                p.grad.data.mul_(clip_coef)
    return norms


class ToyModel(BaseModel):
    """Two linear layers; the loss gives gradients of very different norms per parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.fc2(torch.tanh(self.fc1(inputs)))
        if mode == 'loss':
            return dict(loss=(out - torch.tensor([5.0, -3.0, 0.1])).pow(2).mean())
        return out


def toy_model(seed: int = 0) -> ToyModel:
    torch.manual_seed(seed)
    return ToyModel()


def manual_grads(model: nn.Module, inputs: torch.Tensor, scale: float = 1.0
                 ) -> Dict[str, torch.Tensor]:
    model = copy.deepcopy(model)
    (model(inputs, mode='loss')['loss'] * scale).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def fake_runner(optim_wrapper) -> SimpleNamespace:
    return stub_runner('clip_unit', optim_wrapper=optim_wrapper)


def random_params() -> List[nn.Parameter]:
    """Parameters whose gradients span norms from ~1e-3 to ~1e2; one has no gradient."""
    gen = torch.Generator().manual_seed(0)
    params = []
    for shape, scale in [((3, 4), 1e-3), ((5,), 0.5), ((2, 2), 3.0), ((6, 3), 100.0),
                         ((4,), None), ((7,), 2.9999)]:
        p = nn.Parameter(torch.randn(shape, generator=gen))
        if scale is not None:
            p.grad = torch.randn(shape, generator=gen)
            p.grad *= scale / p.grad.norm()
        params.append(p)
    return params


def test_clip_grads_per_param_matches_dino():
    params, reference = random_params(), random_params()
    total = clip_grads_per_param(params, max_norm=1.0)
    norms = dino_clip_gradients(reference, clip=1.0)
    for p, q in zip(params, reference):
        if q.grad is None:
            assert p.grad is None
        else:
            assert torch.equal(p.grad, q.grad)
    assert total.item() == pytest.approx(sum(n ** 2 for n in norms) ** 0.5, rel=1e-6)
    # Some were clipped (to norm ~max_norm), some left alone.
    after = [p.grad.norm().item() for p in params if p.grad is not None]
    assert sum(a < n for a, n in zip(after, norms)) == 3
    assert all(a <= 1.0 + 1e-5 for a in after)


def test_clip_grads_per_param_without_grads():
    assert clip_grads_per_param([nn.Parameter(torch.ones(2))], max_norm=1.0) is None


@pytest.mark.parametrize('max_norm', [0, -1.0])
def test_bad_max_norm(max_norm):
    with pytest.raises(ValueError, match='max_norm'):
        PerParamGradClipHook(max_norm=max_norm)


def test_registered():
    assert HOOKS.build(dict(type='PerParamGradClipHook', max_norm=0.3)).max_norm == 0.3


@pytest.mark.slow
def test_training_step_clips_each_parameter(tmp_path):
    """One real SGD step (lr=1, no momentum / decay): the update is the clipped gradient."""
    model = toy_model()
    inputs = ToyData().x  # the whole set: one batch, in order
    grads = manual_grads(model, inputs)
    norms = {n: g.norm().item() for n, g in grads.items()}
    max_norm = sorted(norms.values())[len(norms) // 2]  # clips about half of them
    expected = {}
    for name, p in model.named_parameters():
        clipped = nn.Parameter(p.detach().clone())
        clipped.grad = grads[name].clone()
        dino_clip_gradients([clipped], max_norm)
        expected[name] = p.detach() - clipped.grad
    assert 0 < sum(n > max_norm for n in norms.values()) < len(norms)

    runner = Runner(**runner_config(
        tmp_path, model, [dict(type='PerParamGradClipHook', max_norm=max_norm)], name='clip',
        optimizer=dict(type='SGD', lr=1.0, momentum=0, weight_decay=0), shuffle=False,
        batch_size=8, checkpoint_interval=None, seed=None))
    runner.train()

    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), expected[name], rtol=0, atol=1e-6, msg=name)
    grad_norm = runner.message_hub.get_scalar('train/grad_norm').current()
    assert grad_norm == pytest.approx(sum(n ** 2 for n in norms.values()) ** 0.5, rel=1e-5)
    assert not runner.optim_wrapper.optimizer._optimizer_step_pre_hooks  # removed


def test_grad_scaler_step_clips_unscaled_gradients():
    """What AmpOptimWrapper does (GradScaler.step -> optimizer.step), on CPU: the pre-hook
    runs after the unscale, so clipping (and the logged norm) do not depend on the scale."""
    model = toy_model()
    inputs = ToyData().x
    grads = manual_grads(model, inputs)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    max_norm = sorted(g.norm().item() for g in grads.values())[2]

    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    runner = fake_runner(OptimWrapper(optimizer))
    PerParamGradClipHook(max_norm=max_norm).before_train(runner)
    scaler = torch.amp.GradScaler('cpu', init_scale=2.0 ** 12)
    scaler.scale(model(inputs, mode='loss')['loss']).backward()
    scaler.step(optimizer)

    for name, p in model.named_parameters():
        clipped = nn.Parameter(start[name].clone())
        clipped.grad = grads[name].clone()
        dino_clip_gradients([clipped], max_norm)
        torch.testing.assert_close(start[name] - p.detach(), clipped.grad, rtol=1e-5,
                                   atol=1e-6, msg=name)
    total = sum(g.norm().item() ** 2 for g in grads.values()) ** 0.5
    assert runner.message_hub.get_scalar('train/grad_norm').current() == pytest.approx(
        total, rel=1e-5)


def test_optim_wrapper_dict_clips_each_optimizer_and_logs_each_norm():
    model = toy_model()
    fc1 = torch.optim.SGD(model.fc1.parameters(), lr=1.0)
    fc2 = torch.optim.SGD(model.fc2.parameters(), lr=1.0)
    wrappers = OptimWrapperDict(fc1=OptimWrapper(fc1), fc2=OptimWrapper(fc2))
    runner = fake_runner(wrappers)
    hook = PerParamGradClipHook(max_norm=1e-3)  # clips everything
    hook.before_train(runner)
    assert len(fc1._optimizer_step_pre_hooks) == len(fc2._optimizer_step_pre_hooks) == 1

    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    grads = manual_grads(model, ToyData().x)
    model(ToyData().x, mode='loss')['loss'].backward()
    for wrapper in wrappers.values():
        wrapper.step()
    for name, p in model.named_parameters():
        assert (start[name] - p.detach()).norm().item() == pytest.approx(1e-3, rel=1e-3)
    for prefix in ('fc1', 'fc2'):
        expected = sum(g.norm().item() ** 2 for n, g in grads.items()
                       if n.startswith(prefix)) ** 0.5
        logged = runner.message_hub.get_scalar(f'train/{prefix}.grad_norm').current()
        assert logged == pytest.approx(expected, rel=1e-5)
    hook.after_train(runner)
    assert not fc1._optimizer_step_pre_hooks and not fc2._optimizer_step_pre_hooks


def test_fused_optimizer_under_a_loss_scaler_is_refused():
    wrapper = OptimWrapper(torch.optim.SGD(toy_model().parameters(), lr=1.0, fused=True))
    wrapper.loss_scaler = torch.amp.GradScaler('cpu')  # as AmpOptimWrapper has
    with pytest.raises(ValueError, match='fused=False'):
        PerParamGradClipHook().before_train(fake_runner(wrapper))


def test_global_clip_grad_too_is_warned_about(capsys):
    wrapper = OptimWrapper(torch.optim.SGD(toy_model().parameters(), lr=1.0),
                           clip_grad=dict(max_norm=1.0))
    PerParamGradClipHook().before_train(fake_runner(wrapper))
    assert 'clipped twice' in capsys.readouterr().out
