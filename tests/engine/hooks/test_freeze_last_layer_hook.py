"""FreezeLastLayerHook: DINO's frozen last layer gets no update at all (not even weight
decay) during the first epochs, through real short trainings (including a resume)."""
import os
from types import SimpleNamespace
from typing import Dict

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.runner import Runner
from mmpretrain.utils import get_ori_model
from torch import nn

from hirl_mm.engine.hooks.freeze_last_layer_hook import FreezeLastLayerHook, torch_optimizers
from hirl_mm.registry import HOOKS, MODELS
from toy_training import read_log, runner_config, stub_runner

pytestmark = pytest.mark.usefixtures('single_thread')


class ToyModel(BaseModel):
    """backbone -> neck.mlp -> neck.last_layer, as in a DINO head."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(4, 8)
        self.neck = nn.Module()
        self.neck.mlp = nn.Linear(8, 8)
        self.neck.act = nn.ReLU()
        self.neck.last_layer = nn.Linear(8, 4)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.neck.last_layer(self.neck.act(self.neck.mlp(self.backbone(inputs))))
        if mode == 'loss':
            return dict(loss=(out - 1).pow(2).mean())
        return out


def snapshot(model: nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in get_ori_model(model).named_parameters()}


class ParamProbe(Hook):
    """Parameters when training (re)starts and after each (0-based) epoch, and the
    optimizer state of the last layer at the end of each epoch."""

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.start: Dict[str, torch.Tensor] = {}
        self.after: Dict[int, Dict[str, torch.Tensor]] = {}
        self.last_layer_state: Dict[int, int] = {}

    def before_train(self, runner) -> None:
        self.start = snapshot(runner.model)

    def after_train_epoch(self, runner) -> None:
        self.after[runner.epoch] = snapshot(runner.model)
        last_layer = get_ori_model(runner.model).neck.last_layer
        state = runner.optim_wrapper.optimizer.state
        self.last_layer_state[runner.epoch] = sum(len(state[p]) for p in
                                                  last_layer.parameters())


LAST = ('neck.last_layer.weight', 'neck.last_layer.bias')
OTHERS = ('backbone.weight', 'backbone.bias', 'neck.mlp.weight', 'neck.mlp.bias')


def make_runner(work_dir, max_epochs: int, hooks: list, **kwargs) -> Runner:
    """A ToyModel trained on shuffled toy data, with a checkpoint every epoch."""
    return Runner(**runner_config(
        work_dir, ToyModel(), hooks, name='freeze', max_epochs=max_epochs,
        # Strong weight decay: DINO's freeze must stop it too (grad None -> no step at all).
        optimizer=dict(type='AdamW', lr=0.05, weight_decay=0.5), **kwargs))


def fake_runner(model: nn.Module, optim_wrapper, epoch: int = 0) -> SimpleNamespace:
    return stub_runner('freeze_unit', model=model, optim_wrapper=optim_wrapper, epoch=epoch,
                       train_loop=SimpleNamespace(max_epochs=3))


@pytest.mark.parametrize('kwargs,match', [
    (dict(freeze_epochs=-1), 'freeze_epochs'),
    (dict(freeze_epochs=1.0), 'freeze_epochs'),
    (dict(module=''), 'dotted submodule path'),
    (dict(module='neck..last_layer'), 'dotted submodule path'),
    (dict(module=[]), 'dotted submodule path'),
    (dict(module=['neck.last_layer', None]), 'dotted submodule path'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FreezeLastLayerHook(**kwargs)


def test_registered():
    hook = HOOKS.build(dict(type='FreezeLastLayerHook', module='head.last_layer',
                            freeze_epochs=3))
    assert (hook.module, hook.freeze_epochs) == ('head.last_layer', 3)


def test_torch_optimizers_of_a_wrapper_and_a_dict():
    a = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1)
    b = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1)
    assert torch_optimizers(OptimWrapper(a)) == [('', a)]
    wrappers = OptimWrapperDict(x=OptimWrapper(a), y=OptimWrapper(b))
    assert torch_optimizers(wrappers) == [('x', a), ('y', b)]
    with pytest.raises(TypeError, match='OptimWrapper'):
        torch_optimizers(a)


@pytest.mark.slow
def test_frozen_layer_gets_no_update_then_trains(tmp_path):
    probe = ParamProbe()
    hook = dict(type='FreezeLastLayerHook', module='neck.last_layer', freeze_epochs=2)
    runner = make_runner(tmp_path, max_epochs=3, hooks=[hook, probe])
    runner.train()

    before = probe.start
    for epoch in (0, 1):  # frozen: bit-identical despite AdamW's weight decay
        for name in LAST:
            assert torch.equal(probe.after[epoch][name], before[name]), (epoch, name)
        assert probe.last_layer_state[epoch] == 0  # skipped: no Adam moments either
    for epoch in (0, 1, 2):  # the rest trains every epoch
        previous = before if epoch == 0 else probe.after[epoch - 1]
        for name in OTHERS:
            assert not torch.equal(probe.after[epoch][name], previous[name]), (epoch, name)
    for name in LAST:  # epoch 3 (index 2): unfrozen
        assert not torch.equal(probe.after[2][name], before[name]), name
    assert probe.last_layer_state[2] > 0
    # Step pre-hooks are removed after training.
    assert not runner.optim_wrapper.optimizer._optimizer_step_pre_hooks
    log = read_log(runner)
    assert 'FreezeLastLayerHook: "neck.last_layer" gets no update during the first 2' in log
    assert log.count('"neck.last_layer" is trained from epoch 3 on') == 1


@pytest.mark.slow
def test_without_the_hook_the_last_layer_moves_in_the_first_epoch(tmp_path):
    """The control: the set-up above does update the last layer when nothing freezes it."""
    probe = ParamProbe()
    make_runner(tmp_path, max_epochs=1, hooks=[probe]).train()
    for name in LAST:
        assert not torch.equal(probe.after[0][name], probe.start[name])


@pytest.mark.slow
def test_freeze_holds_after_resume(tmp_path):
    hook = dict(type='FreezeLastLayerHook', module='neck.last_layer', freeze_epochs=2)
    first = ParamProbe()
    make_runner(tmp_path, max_epochs=1, hooks=[hook, first]).train()
    for name in LAST:
        assert torch.equal(first.after[0][name], first.start[name])

    resumed = ParamProbe()
    runner = make_runner(tmp_path, max_epochs=3, hooks=[hook, resumed], resume=True,
                         load_from=os.path.join(tmp_path, 'epoch_1.pth'))
    runner.train()
    assert sorted(resumed.after) == [1, 2]  # it did resume after the first epoch
    for name in LAST + OTHERS:  # the checkpoint was loaded
        assert torch.equal(resumed.start[name], first.after[0][name]), name
    for name in LAST:  # still frozen in the 2nd epoch, trained in the 3rd
        assert torch.equal(resumed.after[1][name], first.start[name]), name
        assert not torch.equal(resumed.after[2][name], first.start[name]), name
    for name in OTHERS:
        assert not torch.equal(resumed.after[1][name], resumed.start[name]), name


def test_optim_wrapper_dict_and_per_epoch_switch():
    """Two optimizers (with weight decay); only the one holding the layer gets a pre-hook,
    and the decision follows runner.epoch at every step."""
    model = ToyModel()
    trunk = list(model.backbone.parameters()) + list(model.neck.mlp.parameters())
    main = torch.optim.SGD(trunk, lr=0.1, weight_decay=0.1)
    head = torch.optim.SGD(model.neck.last_layer.parameters(), lr=0.1, weight_decay=0.1)
    wrappers = OptimWrapperDict(main=OptimWrapper(main), head=OptimWrapper(head))
    runner = fake_runner(model, wrappers)
    hook = FreezeLastLayerHook(module='neck.last_layer', freeze_epochs=1)
    hook.before_train(runner)
    assert len(head._optimizer_step_pre_hooks) == 1 and not main._optimizer_step_pre_hooks

    def train_step():
        start = snapshot(model)
        wrappers.zero_grad()
        model(torch.randn(4, 4), mode='loss')['loss'].backward()
        for wrapper in wrappers.values():  # as a multi-optimizer train_step does
            wrapper.step()
        return start, snapshot(model)

    start, end = train_step()  # epoch 0: frozen
    assert all(torch.equal(start[n], end[n]) for n in LAST)
    assert not any(torch.equal(start[n], end[n]) for n in OTHERS)
    runner.epoch = 1
    hook.before_train_epoch(runner)
    start, end = train_step()  # epoch 1: trained
    assert not any(torch.equal(start[n], end[n]) for n in LAST)
    hook.after_train(runner)
    assert not head._optimizer_step_pre_hooks


def test_zero_freeze_epochs_registers_nothing():
    model = ToyModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    runner = fake_runner(model, OptimWrapper(optimizer))
    FreezeLastLayerHook(freeze_epochs=0).before_train(runner)
    assert not optimizer._optimizer_step_pre_hooks


def test_several_modules():
    """iBOT with separate [CLS] and patch last layers freezes both."""
    model = ToyModel()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.1)
    runner = fake_runner(model, OptimWrapper(optimizer))
    FreezeLastLayerHook(module=['neck.last_layer', 'neck.mlp']).before_train(runner)
    start = snapshot(model)
    model(torch.randn(4, 4), mode='loss')['loss'].backward()
    runner.optim_wrapper.step()
    end = snapshot(model)
    for name in LAST + ('neck.mlp.weight', 'neck.mlp.bias'):
        assert torch.equal(start[name], end[name]), name
    assert not torch.equal(start['backbone.weight'], end['backbone.weight'])


@pytest.mark.slow
@pytest.mark.parametrize('module,error,match', [
    ('head.last_layer', AttributeError, r'no submodule "head\.last_layer".*module='),
    ('neck.last', AttributeError, r'no submodule "neck\.last"'),
    ('neck.act', ValueError, r'"neck\.act" \(ReLU\) has no parameters'),
])
def test_bad_module_fails_at_before_train(tmp_path, module, error, match):
    probe = ParamProbe()
    runner = make_runner(tmp_path, max_epochs=1, hooks=[
        dict(type='FreezeLastLayerHook', module=module), probe])
    with pytest.raises(error, match=match):
        runner.train()
    assert probe.after == {}


def test_module_outside_the_optimizers_is_refused():
    model = ToyModel()
    optimizer = torch.optim.SGD(model.backbone.parameters(), lr=0.1)
    runner = fake_runner(model, OptimWrapper(optimizer))
    with pytest.raises(ValueError, match='no optimizer of runner.optim_wrapper holds'):
        FreezeLastLayerHook(module='neck.last_layer').before_train(runner)


def test_iteration_based_loop_is_refused():
    from mmengine.runner import IterBasedTrainLoop
    model = ToyModel()
    runner = fake_runner(model, OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)))
    runner.train_loop = IterBasedTrainLoop.__new__(IterBasedTrainLoop)
    with pytest.raises(TypeError, match='epoch-based train loop'):
        FreezeLastLayerHook().before_train(runner)


def _ibot(shared_head: bool):
    """The tiny iBOT of the study config; ``shared_head=False`` adds neck.patch_last_layer."""
    cfg = Config.fromfile('configs/study/ibot_tiny-vit_fashion-mnist.py').model
    cfg.neck.shared_head = shared_head
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


@pytest.mark.parametrize('name_contains,frozen', [('last_layer', True), (None, False)])
def test_separate_ibot_patch_layer_is_frozen_by_name_after_the_clip(name_contains, frozen):
    """The reference freezes every '*last_layer*' parameter: with shared_head=False and
    module='neck.last_layer' the patch layer is frozen too; its gradient still counts in
    the clipped global norm (cancelled in the step pre-hook, after clip_grad)."""
    model = _ibot(shared_head=False)
    params = [p for p in model.parameters() if p.requires_grad]  # not the teacher's
    wrapper = OptimWrapper(torch.optim.SGD(params, lr=0.1, weight_decay=0.1),
                           clip_grad=dict(max_norm=1e-3))
    runner = fake_runner(model, wrapper)
    hook = FreezeLastLayerHook(module='neck.last_layer', freeze_epochs=1,
                               name_contains=name_contains)
    hook.before_train(runner)
    patch = model.neck.patch_last_layer.weight_v
    clipped_with = []
    original_clip = wrapper._clip_grad
    wrapper._clip_grad = lambda: (clipped_with.append(patch.grad is not None),
                                  original_clip())[1]

    def step():
        start = patch.detach().clone()
        wrapper.zero_grad()
        cls, patch_scores = model.neck(model.backbone(torch.randn(2, 3, 28, 28)))[:2]
        (cls.logsumexp(-1).sum() + patch_scores.logsumexp(-1).sum()).backward()
        wrapper.step()
        return torch.equal(patch.detach(), start)

    assert step() == frozen  # epoch 0
    assert clipped_with == [True]  # its gradient was there when the norm was clipped
    runner.epoch = 1
    assert not step()  # epoch 1: trained
    if frozen:
        assert '"neck.last_layer", "neck.patch_last_layer"' in hook._names
