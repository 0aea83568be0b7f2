"""CosineAnnealingWeightDecayExceptFixed: mmpretrain's CosineAnnealingWeightDecay, except
for the param groups marked fixed_weight_decay (FixedDecayGroupOptimWrapperConstructor)."""
import copy

import torch
from mmengine.optim import OptimWrapper
from mmpretrain.engine.schedulers import CosineAnnealingWeightDecay
from torch import nn

import hirl_mm  # noqa: F401
from hirl_mm.engine.optimizers import FIXED_DECAY_KEY
from hirl_mm.engine.schedulers import CosineAnnealingWeightDecayExceptFixed
from hirl_mm.registry import PARAM_SCHEDULERS

STEPS = 12


def _optim_wrapper(fixed=True):
    """Groups: decayed, at 0, and (``fixed``) marked at 0.01, and marked at 0."""
    torch.manual_seed(0)
    layers = [nn.Linear(2, 2) for _ in range(4)]
    groups = [dict(params=layers[0].parameters()),
              dict(params=layers[1].parameters(), weight_decay=0.),
              dict(params=layers[2].parameters(), weight_decay=0.01),
              dict(params=layers[3].parameters(), weight_decay=0.)]
    if fixed:
        groups[2][FIXED_DECAY_KEY] = groups[3][FIXED_DECAY_KEY] = True
    return OptimWrapper(torch.optim.AdamW(groups, lr=0.1, weight_decay=0.04))


def _weight_decays(scheduler_cls, optim_wrapper, steps=STEPS, **kwargs):
    scheduler = scheduler_cls(optim_wrapper, eta_min=0.4, T_max=STEPS, **kwargs)
    seen = []
    for _ in range(steps):
        seen.append([g['weight_decay'] for g in optim_wrapper.optimizer.param_groups])
        optim_wrapper.step()
        scheduler.step()
    return seen, scheduler


def test_without_marked_groups_it_is_mmpretrains_scheduler():
    ours, _ = _weight_decays(CosineAnnealingWeightDecayExceptFixed, _optim_wrapper(False))
    theirs, _ = _weight_decays(CosineAnnealingWeightDecay, _optim_wrapper(False))
    assert ours == theirs
    assert ours[-1][0] > 0.39 and ours[-1][2] > 0.39  # both decayed groups go to 0.4
    assert all(wd[1] == wd[3] == 0 for wd in ours)  # zero stays zero


def test_marked_groups_keep_their_weight_decay():
    ours, _ = _weight_decays(CosineAnnealingWeightDecayExceptFixed, _optim_wrapper())
    theirs, _ = _weight_decays(CosineAnnealingWeightDecay, _optim_wrapper())
    assert [wd[:2] for wd in ours] == [wd[:2] for wd in theirs]
    assert all(wd[2] == 0.01 and wd[3] == 0 for wd in ours)
    assert theirs[-1][2] > 0.39  # mmpretrain's scheduler ignores the mark


def test_registered_and_built_from_epochs_like_the_configs():
    optim_wrapper = _optim_wrapper()
    scheduler = PARAM_SCHEDULERS.build(
        dict(type='CosineAnnealingWeightDecayExceptFixed', eta_min=0.4, T_max=4,
             by_epoch=True, begin=0, end=4, convert_to_iter_based=True),
        default_args=dict(optimizer=optim_wrapper, epoch_length=3))
    assert isinstance(scheduler, CosineAnnealingWeightDecayExceptFixed)
    assert (scheduler.T_max, scheduler.end, scheduler.by_epoch) == (STEPS, STEPS, False)


def test_state_dict_round_trip_continues_the_schedule():
    straight, _ = _weight_decays(CosineAnnealingWeightDecayExceptFixed, _optim_wrapper())
    optim_wrapper = _optim_wrapper()
    first, scheduler = _weight_decays(CosineAnnealingWeightDecayExceptFixed,
                                      optim_wrapper, steps=5)
    states = copy.deepcopy((optim_wrapper.state_dict(), scheduler.state_dict()))
    resumed = _optim_wrapper()
    rest_scheduler = CosineAnnealingWeightDecayExceptFixed(resumed, eta_min=0.4,
                                                           T_max=STEPS)
    resumed.load_state_dict(states[0])
    rest_scheduler.load_state_dict(states[1])
    rest = []
    for _ in range(STEPS - 5):
        rest.append([g['weight_decay'] for g in resumed.optimizer.param_groups])
        resumed.step()
        rest_scheduler.step()
    assert first + rest == straight
