"""DINO and iBOT as algorithms: crops, teacher (EMA, no gradient, eval mode), masks."""
import math

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmpretrain.structures import DataSample

import hirl_mm  # noqa: F401
from hirl_mm.registry import MODELS

CONFIGS = {name: f'configs/study/{name.lower()}_tiny-vit_fashion-mnist.py'
           for name in ('DINO', 'iBOT')}
BATCH, LOCAL = 3, 2

pytestmark = pytest.mark.usefixtures('single_thread')


def _model(name: str, base_momentum: float = 0.004, neck: dict = None, **model_kwargs):
    cfg = Config.fromfile(CONFIGS[name]).model
    cfg.backbone.drop_path_rate = 0.  # deterministic student for exact comparisons
    cfg.neck.use_bn = False  # nor BN, which mixes the rows of a batch (tested on its own)
    cfg.neck.update(neck or {})
    cfg.update(model_kwargs, base_momentum=base_momentum)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model.train()
    MessageHub.get_current_instance().update_info('max_iters', 10)
    return model


def _batch(masked: bool = False):
    torch.manual_seed(1)
    views = [torch.randn(BATCH, 3, 28, 28) for _ in range(2)] + \
        [torch.randn(BATCH, 3, 12, 12) for _ in range(LOCAL)]
    samples = []
    for i in range(BATCH):
        sample = DataSample()
        if masked:
            mask = torch.zeros(2, 7, 7, dtype=torch.bool)
            mask[0, i, :3] = True
            mask[1, :2, i] = True
            sample.set_field(mask, 'mask', field_type='metainfo')
        samples.append(sample)
    return views, samples


@pytest.mark.parametrize('name', ['DINO', 'iBOT'])
def test_teacher_starts_as_the_student_and_gets_no_gradient(name):
    """The configs' teacher_neck_init='independent' (the HIRL authors'): the teacher's
    backbone is the student's, its head (neck) its own random draw."""
    model = _model(name)
    student = torch.nn.Sequential(model.backbone, model.neck).state_dict()
    neck_differs = []
    for key, value in model.teacher.module.state_dict().items():
        if key.startswith('0.'):
            torch.testing.assert_close(value, student[key])
        elif value.is_floating_point() and value.numel() > 1 and value.std() > 0:
            neck_differs.append(not torch.equal(value, student[key]))
    assert neck_differs and all(neck_differs)
    views, samples = _batch(masked=True)
    losses = model.loss(views, samples)
    sum(losses.values()).backward()
    assert all(not p.requires_grad and p.grad is None for p in model.teacher.parameters())
    assert model.backbone.cls_token.grad is not None
    assert not model.teacher.training and model.backbone.training


def test_bn_head_teacher_normalises_with_its_batch_statistics():
    """A BN head (DINO's ResNet option): the teacher's BN uses the batch, as the reference."""
    cfg = Config.fromfile(CONFIGS['DINO']).model
    cfg.neck.use_bn = True
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model.train()
    bns = [m for m in model.teacher.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert bns and all(bn.training for bn in bns)
    assert not model.teacher.module[0].training  # no drop path in the teacher
    bn = bns[0]
    seen = {}
    bn.register_forward_hook(lambda m, i, o: seen.update(inp=i[0], out=o))
    with torch.no_grad():
        model.teacher(torch.randn(4, 3, 28, 28) * 5 + 3)
    expected = torch.nn.functional.batch_norm(seen['inp'], None, None, bn.weight, bn.bias,
                                              training=True, eps=bn.eps)
    torch.testing.assert_close(seen['out'], expected)
    model.eval()
    assert not any(bn.training for bn in bns)


@pytest.mark.parametrize('name', ['DINO', 'iBOT'])
def test_teacher_moves_by_ema_with_the_cosine_momentum(name):
    model = _model(name, base_momentum=0.1)
    views, samples = _batch(masked=True)
    model.loss(views, samples)  # step 0: the teacher copies the student
    teacher_before = {k: v.clone() for k, v in model.teacher.module.named_parameters()}
    with torch.no_grad():
        for p in model.backbone.parameters():
            p.add_(torch.randn_like(p))
    student = dict(torch.nn.Sequential(model.backbone, model.neck).named_parameters())
    model.loss(views, samples)  # step 1
    # CosineEMA: 1 - m = end - (end - start) * (cos(pi * k / K) + 1) / 2, end = 0.
    rate = 0.1 * (math.cos(math.pi * 1 / 10) + 1) / 2
    for key, value in model.teacher.module.named_parameters():
        expected = teacher_before[key] * (1 - rate) + student[key].detach() * rate
        torch.testing.assert_close(value, expected)


def test_dino_student_sees_all_crops_in_two_forwards_teacher_the_globals():
    model = _model('DINO')
    calls = {'student': [], 'teacher': []}
    model.backbone.register_forward_hook(
        lambda m, i, o: calls['student'].append(tuple(i[0].shape)))
    model.teacher.module[0].register_forward_hook(
        lambda m, i, o: calls['teacher'].append(tuple(i[0].shape)))
    seen = {}
    model.head.loss_module.register_forward_hook(
        lambda m, i, o: seen.update(student=i[0], teacher=i[1]))
    views, samples = _batch()
    model.loss(views, samples)
    assert calls['student'] == [(2 * BATCH, 3, 28, 28), (LOCAL * BATCH, 3, 12, 12)]
    assert calls['teacher'] == [(2 * BATCH, 3, 28, 28)]
    # Crop-major rows: rows [B:2B] are the second global crop's scores.
    model.eval()
    with torch.no_grad():
        second = model.neck(model.backbone(views[1]))[0]
        local = model.neck(model.backbone(views[3]))[0]
    torch.testing.assert_close(seen['student'][BATCH:2 * BATCH], second)
    torch.testing.assert_close(seen['student'][3 * BATCH:], local)
    assert seen['teacher'].shape[0] == 2 * BATCH


def test_ibot_masks_reach_the_student_globals_crop_major():
    model = _model('iBOT')
    masks_seen = []
    original = model.backbone.forward

    def spy(x, mask=None):
        masks_seen.append(mask)
        return original(x, mask=mask)

    model.backbone.forward = spy
    seen = {}
    model.head.loss_module.register_forward_hook(
        lambda m, i, o: seen.update(zip(['scls', 'spatch', 'tcls', 'tpatch', 'masks'], i)))
    views, samples = _batch(masked=True)
    losses = model.loss(views, samples)
    assert set(losses) == {'loss_cls', 'loss_patch'}
    masks = masks_seen[0]
    assert masks.shape == (2 * BATCH, 49) and masks_seen[1] is None  # locals unmasked
    for i in range(BATCH):
        torch.testing.assert_close(masks[i], samples[i].mask[0].flatten())
        torch.testing.assert_close(masks[BATCH + i], samples[i].mask[1].flatten())
    torch.testing.assert_close(seen['masks'], masks)
    assert seen['scls'].shape[0] == (2 + LOCAL) * BATCH
    assert seen['spatch'].shape == seen['tpatch'].shape == (2 * BATCH, 49, 512)


def test_errors_name_the_fix():
    model = _model('iBOT')
    views, samples = _batch(masked=False)
    with pytest.raises(ValueError, match='iBOTMaskGenerator'):
        model.loss(views, samples)
    with pytest.raises(ValueError, match='MultiView'):
        _model('DINO').loss(views[:1], samples)
    with pytest.raises(ValueError, match='global crops must have one size'):
        _model('DINO').loss([views[0], views[2]] + views[2:], samples)
