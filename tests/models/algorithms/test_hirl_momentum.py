"""HIRL and the momentum / teacher encoder: its own BN statistics (``momentum_buffers``),
and its calls recorded only in the steps that read them."""
import pytest
import torch
from mmengine.logging import MessageHub

from hirl_mm.models.algorithms import hirl as hirl_module
from hirl_mm.models.utils.backbone_capture import record_calls_of
from hirl_mm.models.utils.teacher_ema import EMAUpdateMixin
from hirl_mm.registry import MODELS
from test_hirl import _batch as cnn_batch
from test_hirl import _fill_prototypes, _model_cfg
from test_hirl_vit import _batch, _mocov3_cfg

pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.fixture(autouse=True)
def _max_iters():
    MessageHub.get_current_instance().update_info('max_iters', 100)


def _mocov3(**hirl):
    torch.manual_seed(0)
    model = MODELS.build(_mocov3_cfg(embedding='neck', **hirl))
    model.init_weights()
    model.train()
    return model


def _first_bn(module: torch.nn.Module) -> torch.nn.BatchNorm1d:
    return next(m for m in module.modules() if isinstance(m, torch.nn.BatchNorm1d))


def _train(model, steps: int) -> list:
    """``steps`` SGD steps; per step, the two BNs' running means when the momentum encoder
    starts its first forward (right after its update), and its BN's inputs."""
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    online_bn, momentum_bn = _first_bn(model.neck), _first_bn(model.momentum_encoder.module)
    seen = []
    model.momentum_encoder.module.register_forward_pre_hook(
        lambda *_: seen[-1]['start'].append((momentum_bn.running_mean.clone(),
                                             online_bn.running_mean.clone())))
    momentum_bn.register_forward_hook(
        lambda _m, args, _o: seen[-1]['inputs'].append(args[0].detach().clone()))
    for step in range(steps):
        seen.append(dict(start=[], inputs=[]))
        views, samples = _batch()
        views = [v + step for v in views]  # other batch statistics at every step
        optimizer.zero_grad()
        losses = model.loss(views, samples)
        sum(v for k, v in losses.items() if k.startswith('loss')).backward()
        optimizer.step()
    return seen


def test_own_buffers_come_from_the_momentum_encoders_own_forwards():
    model = _mocov3(momentum_buffers='own')
    assert model.momentum_encoder.buffer_source == 'own'
    online_bn = _first_bn(model.neck)
    online_means = []  # the online BN's running mean after each of its forwards
    online_bn.register_forward_hook(
        lambda m, *_: online_means.append(m.running_mean.clone()))
    seen = _train(model, steps=3)
    momentum_bn = _first_bn(model.momentum_encoder.module)
    # Copied once, at the first update (MoCo v3 updates after its two online forwards),
    expected = online_means[1].clone()
    torch.testing.assert_close(seen[0]['start'][0][0], expected)
    # then only its own train-mode forwards move it (BN momentum 0.1, batch means).
    for step in seen:
        for inputs in step['inputs']:
            expected = 0.9 * expected + 0.1 * inputs.mean(dim=0)
    torch.testing.assert_close(momentum_bn.running_mean, expected)
    assert not torch.allclose(momentum_bn.running_mean, online_bn.running_mean)
    momentum_start, online_now = seen[-1]['start'][0]
    assert not torch.allclose(momentum_start, online_now)  # not overwritten by the update


def test_online_buffers_are_mmengines_copy_at_every_update():
    model = _mocov3()
    assert model.momentum_buffers == 'online'
    for step in _train(model, steps=3):
        momentum_start, online_now = step['start'][0]
        torch.testing.assert_close(momentum_start, online_now, rtol=0, atol=0)


@pytest.mark.parametrize('algorithm,averaged', [('MoCo', 'encoder_k'), ('BYOL', 'target_net')])
def test_own_buffers_for_other_momentum_methods(algorithm, averaged):
    torch.manual_seed(0)
    model = MODELS.build(_model_cfg(algorithm, momentum_buffers='own'))
    ema = getattr(model, averaged)
    assert isinstance(ema, EMAUpdateMixin) and ema.buffer_source == 'own'
    model.train()
    for step in range(2):
        views, samples = cnn_batch(algorithm=algorithm)
        model.loss([v * (step + 1) for v in views], samples)
    ema_bn = next(m for m in ema.module.modules() if isinstance(m, torch.nn.BatchNorm2d))
    online_bn = next(m for m in model.backbone.modules()
                     if isinstance(m, torch.nn.BatchNorm2d))
    assert not torch.allclose(ema_bn.running_mean, online_bn.running_mean)


def test_own_buffers_refused_without_a_momentum_encoder():
    with pytest.raises(ValueError, match='HIRLSimCLR has no momentum encoder'):
        MODELS.build(_model_cfg('SimCLR', momentum_buffers='own'))
    with pytest.raises(ValueError, match=r"momentum_buffers='teacher' is not one of"):
        MODELS.build(_model_cfg('MoCo', momentum_buffers='teacher'))


@pytest.fixture
def recorded_modules(monkeypatch):
    """The modules each ``loss`` records the calls of."""
    seen = []

    def spy(modules):
        seen.append(list(modules))
        return record_calls_of(modules)

    monkeypatch.setattr(hirl_module, 'record_calls_of', spy)
    return seen


def _momentum_modules(model) -> set:
    return {id(m) for m in model.momentum_encoder.module.modules()}


@pytest.mark.parametrize('iter_wise,clustered,bank,read', [
    (False, True, False, False),
    (True, False, False, False),  # warm-up: no re-assignment yet
    (True, True, False, True),
    (False, False, True, True),  # the feature bank records the momentum rows
])
def test_momentum_calls_recorded_only_when_read(recorded_modules, iter_wise, clustered,
                                                bank, read):
    model = _mocov3(iter_wise_assignment=iter_wise)
    if clustered:
        _fill_prototypes(model)
    model.bank_recording = bank
    views, samples = _batch()
    losses = model.loss(views, samples)
    (modules, ) = recorded_modules
    assert [id(m) for m in modules[:2]] == [id(model.backbone), id(model.neck)]
    momentum = [m for m in modules if id(m) in _momentum_modules(model)]
    assert len(momentum) == (2 if read else 0)
    assert ('assign_changed_ratio' in losses) == (iter_wise and clustered)
    assert (model.pop_bank_rows() is not None) == bank


def test_bank_rows_are_still_the_momentum_encoders_with_feature_source_online_unread(
        recorded_modules):
    model = _mocov3(feature_source='online')
    model.bank_recording = True
    views, samples = _batch()
    model.loss(views, samples)
    assert not [m for m in recorded_modules[0] if id(m) in _momentum_modules(model)]
    idx, rows = model.pop_bank_rows()
    assert rows.shape[0] == idx.shape[0] == len(samples)
