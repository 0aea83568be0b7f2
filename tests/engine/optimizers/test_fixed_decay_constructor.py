"""FixedDecayGroupOptimWrapperConstructor: HIRL's semantic heads in one param group with a
fixed weight decay (the authors' ``optimizer.add_param_group``), scheduled with
CosineAnnealingWeightDecayExceptFixed, as the ViT configs build them."""
import io

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.registry import PARAM_SCHEDULERS
from torch import nn

import hirl_mm  # noqa: F401
from hirl_mm.engine.optimizers import FIXED_DECAY_KEY
from hirl_mm.registry import MODELS

pytestmark = pytest.mark.usefixtures('single_thread')

EMBED, BOTTLENECK, OUT = 32, 16, 64
DINO = dict(
    type='DINO', base_momentum=0.01, num_global_crops=2,
    data_preprocessor=dict(type='SelfSupDataPreprocessor', mean=[0.] * 3, std=[1.] * 3),
    backbone=dict(type='MaskedVisionTransformer',
                  arch=dict(embed_dims=EMBED, num_layers=1, num_heads=2,
                            feedforward_channels=2 * EMBED),
                  img_size=16, patch_size=4, out_type='cls_token'),
    neck=dict(type='DINONeck', in_channels=EMBED, out_channels=OUT, hidden_channels=32,
              bottleneck_channels=BOTTLENECK, num_layers=3, use_bn=True),
    head=dict(type='DINOHead', loss=dict(type='DINOLoss', out_channels=OUT,
                                         num_global_crops=2, student_temp=0.1,
                                         teacher_temp=0.04, center_momentum=0.9)))
HIRL = dict(DINO, type='HIRL', algorithm='DINO', num_clusters=[6, 3],
            semantic_head=dict(type='SemanticPathHead', num_neg_path=4, num_mlp_layer=2))

LR, WD, WD_END, HEAD_WD = 0.003, 0.04, 0.4, 0.01
MAX_EPOCHS, WARMUP_EPOCHS, EPOCH_LENGTH = 4, 1, 3
ITERS = MAX_EPOCHS * EPOCH_LENGTH


def optim_wrapper_cfg(**paramwise):
    """The shape of the ViT configs' optim_wrapper (OptimWrapper instead of
    AmpOptimWrapper, which needs a GPU)."""
    return dict(
        type='OptimWrapper', clip_grad=dict(max_norm=0.3),
        constructor='FixedDecayGroupOptimWrapperConstructor',
        optimizer=dict(type='AdamW', lr=LR, betas=(0.9, 0.999), weight_decay=WD),
        paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0., **paramwise))


HEAD_GROUP = dict(fixed_decay_groups=dict(semantic_head=dict(weight_decay=HEAD_WD)))
PARAM_SCHEDULER = [
    dict(type='LinearLR', start_factor=1e-9, by_epoch=True, begin=0, end=WARMUP_EPOCHS,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=MAX_EPOCHS - WARMUP_EPOCHS, eta_min=2e-6,
         by_epoch=True, begin=WARMUP_EPOCHS, end=MAX_EPOCHS, convert_to_iter_based=True),
    dict(type='CosineAnnealingWeightDecayExceptFixed', eta_min=WD_END, T_max=MAX_EPOCHS,
         by_epoch=True, begin=0, end=MAX_EPOCHS, convert_to_iter_based=True),
]


def _model(cfg=HIRL):
    MessageHub.get_current_instance().update_info('max_iters', ITERS)
    torch.manual_seed(0)
    return MODELS.build(cfg)


def _optim_wrapper(model, paramwise=HEAD_GROUP, **overrides):
    """The optim wrapper as the Runner builds it (configs keep mmpretrain's default scope
    and import hirl_mm)."""
    cfg = dict(optim_wrapper_cfg(**paramwise), **overrides)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return build_optim_wrapper(model, cfg)


def _build(model, paramwise=HEAD_GROUP):
    """optim wrapper and schedulers as the Runner builds them."""
    optim_wrapper = _optim_wrapper(model, paramwise)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        schedulers = [PARAM_SCHEDULERS.build(
            cfg, default_args=dict(optimizer=optim_wrapper, epoch_length=EPOCH_LENGTH))
            for cfg in PARAM_SCHEDULER]
    return optim_wrapper, schedulers


def _groups(optim_wrapper):
    """The optimizer's groups (``optim_wrapper.param_groups`` adds mmengine's
    ``base_param_settings``, the optimizer's defaults that the logger reads as base_lr)."""
    return [{k: v for k, v in group.items() if k != 'params'}
            for group in optim_wrapper.optimizer.param_groups]


def _run(optim_wrapper, schedulers, iters):
    """The groups' settings used at each iteration (the scheduler hook steps after it)."""
    seen = []
    for _ in range(iters):
        seen.append(_groups(optim_wrapper))
        optim_wrapper.step()  # no gradients: nothing moves, the counters do
        for scheduler in schedulers:
            scheduler.step()
    return seen


def _cosine_wd(step):
    return WD_END + (WD - WD_END) * (1 + torch.cos(torch.tensor(torch.pi * step / ITERS))) / 2


def test_semantic_head_is_one_group_with_every_trainable_head_parameter():
    model = _model()
    optim_wrapper, _ = _build(model)
    groups = optim_wrapper.optimizer.param_groups
    head = [g for g in groups if g.get(FIXED_DECAY_KEY)]
    assert len(head) == 1 and head[0] is groups[-1]  # appended, as add_param_group does
    head = head[0]
    assert {id(p) for p in head['params']} == {id(p) for p in model.semantic_head.parameters()}
    # BN weights and biases included, at the same decay (no norm / bias exemption).
    assert any(isinstance(m, nn.modules.batchnorm._BatchNorm)
               for m in model.semantic_head.modules())
    assert head['weight_decay'] == HEAD_WD and head['initial_lr'] == LR
    # Every other trainable parameter exactly once, as the default constructor puts it;
    # the teacher (frozen) is left out.
    rest = [p for g in groups[:-1] for p in g['params']]
    trainable = [p for name, p in model.named_parameters()
                 if p.requires_grad and not name.startswith('semantic_head.')]
    assert len(rest) == len({id(p) for p in rest}) == len(trainable)
    assert {id(p) for p in rest} == {id(p) for p in trainable}
    assert not any(g.get(FIXED_DECAY_KEY) for g in groups[:-1])


def test_the_rest_is_grouped_as_the_default_constructor_groups_it():
    model = _model()
    ours = _optim_wrapper(model)
    default = _optim_wrapper(model, {}, constructor='DefaultOptimWrapperConstructor')
    default_groups = [g for g in default.optimizer.param_groups
                      if not any(p is q for p in g['params']
                                 for q in model.semantic_head.parameters())]
    assert len(ours.optimizer.param_groups) - 1 == len(default_groups)
    for mine, theirs in zip(ours.optimizer.param_groups[:-1], default_groups):
        assert [id(p) for p in mine['params']] == [id(p) for p in theirs['params']]
        assert {k: v for k, v in mine.items() if k != 'params'} == \
            {k: v for k, v in theirs.items() if k != 'params'}


def test_schedules_head_at_fixed_decay_with_the_lr_of_the_rest():
    model = _model()
    optim_wrapper, schedulers = _build(model)
    first = optim_wrapper.optimizer.param_groups[0]['params'][0]
    assert any(first is p for p in model.backbone.parameters()) and first.ndim > 1
    zero = [i for i, g in enumerate(optim_wrapper.optimizer.param_groups) if g['weight_decay'] == 0]
    assert zero  # biases and LayerNorms of the ViT, BN of the DINO head
    seen = _run(optim_wrapper, schedulers, ITERS)
    lrs = []
    for step, groups in enumerate(seen):
        head, rest = groups[-1], groups[:-1]
        assert head['weight_decay'] == HEAD_WD
        assert head[FIXED_DECAY_KEY] is True
        assert head['lr'] == pytest.approx(rest[0]['lr'], rel=1e-9, abs=1e-15)
        assert len({g['lr'] for g in rest}) == 1
        assert rest[0]['weight_decay'] == pytest.approx(float(_cosine_wd(step)), rel=1e-5)
        for i in zero:
            assert groups[i]['weight_decay'] == 0
        lrs.append(head['lr'])
    # The lr schedule reaches the head: warm-up from ~0, then the cosine down.
    assert lrs[0] < 1e-9 and lrs[EPOCH_LENGTH] == pytest.approx(LR)
    assert lrs[-1] < lrs[EPOCH_LENGTH] / 2
    assert seen[-1][0]['weight_decay'] > 0.39  # the rest goes 0.04 -> 0.4


def test_lr_mult_scales_the_head_lr():
    model = _model()
    paramwise = dict(fixed_decay_groups=dict(
        semantic_head=dict(weight_decay=HEAD_WD, lr_mult=0.5)))
    optim_wrapper, schedulers = _build(model, paramwise)
    seen = _run(optim_wrapper, schedulers, ITERS)
    assert seen[0][-1]['initial_lr'] == LR * 0.5
    for groups in seen[:EPOCH_LENGTH + 1]:  # the warm-up scales every lr alike
        assert groups[-1]['lr'] == pytest.approx(groups[0]['lr'] * 0.5, rel=1e-9)
    # The cosine goes to an absolute eta_min: (lr - eta_min) shrinks alike in each group.
    eta_min = PARAM_SCHEDULER[1]['eta_min']
    for groups in seen[EPOCH_LENGTH:]:
        assert (groups[-1]['lr'] - eta_min) / (groups[0]['lr'] - eta_min) == \
            pytest.approx((LR * 0.5 - eta_min) / (LR - eta_min), rel=1e-9)


def test_resume_restores_the_groups_and_continues_the_schedules():
    straight = _run(*_build(_model()), ITERS)

    optim_wrapper, schedulers = _build(_model())
    first = _run(optim_wrapper, schedulers, 5)
    buffer = io.BytesIO()
    torch.save(dict(optimizer=optim_wrapper.state_dict(),
                    param_schedulers=[s.state_dict() for s in schedulers]), buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer)

    # As Runner.resume: fresh wrapper and schedulers, then the states loaded.
    optim_wrapper, schedulers = _build(_model())
    optim_wrapper.load_state_dict(checkpoint['optimizer'])
    for scheduler, state in zip(schedulers, checkpoint['param_schedulers']):
        scheduler.load_state_dict(state)
    head = optim_wrapper.optimizer.param_groups[-1]
    assert head[FIXED_DECAY_KEY] is True and head['weight_decay'] == HEAD_WD
    rest = _run(optim_wrapper, schedulers, ITERS - 5)
    assert len(first + rest) == len(straight)
    for resumed, expected in zip(first + rest, straight):
        assert resumed == expected


def test_a_module_the_model_lacks_is_an_error():
    with pytest.raises(ValueError, match="no module 'semantic_head'.*without HIRL"):
        _build(_model(DINO))
    with pytest.raises(ValueError, match=r"no module 'semantic_heads' \(did you mean "
                                         r"\['semantic_head'"):
        _build(_model(), dict(fixed_decay_groups=dict(
            semantic_heads=dict(weight_decay=HEAD_WD))))


@pytest.mark.parametrize('paramwise,message', [
    (dict(fixed_decay_group=dict(semantic_head=dict(weight_decay=HEAD_WD))),
     r"paramwise_cfg key 'fixed_decay_group' is unknown \(did you mean "
     r"\['fixed_decay_groups'\]"),
    (dict(fixed_decay_groups=dict(semantic_head=dict(weight_dacay=HEAD_WD))),
     r"option 'weight_dacay' is unknown \(did you mean \['weight_decay'\]"),
    (dict(fixed_decay_groups=dict(semantic_head=dict(lr_mult=1.))), 'needs weight_decay'),
    (dict(fixed_decay_groups={'': dict(weight_decay=HEAD_WD)}), 'whole model'),
])
def test_config_mistakes_are_errors_at_build_time(paramwise, message):
    with pytest.raises(ValueError, match=message):
        _optim_wrapper(nn.Linear(2, 2), paramwise)


class _Toy(nn.Module):

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3, 3)
        self.head = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))


def _toy_wrapper(model, groups):
    return _optim_wrapper(model, dict(fixed_decay_groups=groups))


def test_a_module_inside_another_listed_one_belongs_to_the_innermost():
    model = _Toy()
    optim_wrapper = _toy_wrapper(model, {'head': dict(weight_decay=0.1),
                                         'head.2': dict(weight_decay=0.2, lr_mult=0.)})
    outer, inner = optim_wrapper.optimizer.param_groups[-2:]
    assert {id(p) for p in outer['params']} == {
        id(p) for m in model.head[:2] for p in m.parameters()}
    assert {id(p) for p in inner['params']} == {id(p) for p in model.head[2].parameters()}
    assert (outer['weight_decay'], outer['lr']) == (0.1, LR)
    assert (inner['weight_decay'], inner['lr']) == (0.2, 0.)
    assert len(optim_wrapper.optimizer.param_groups) == 2 + 2  # body.weight, body.bias, 2 fixed


def test_frozen_parameters_are_left_out_and_a_frozen_module_is_an_error():
    model = _Toy()
    model.head[0].requires_grad_(False)
    head = _toy_wrapper(model, {'head': dict(weight_decay=0.1)}).optimizer.param_groups[-1]
    assert {id(p) for p in head['params']} == {
        id(p) for m in model.head[1:] for p in m.parameters()}
    model.head.requires_grad_(False)
    with pytest.raises(ValueError, match="'head' has no trainable parameter"):
        _toy_wrapper(model, {'head': dict(weight_decay=0.1)})
