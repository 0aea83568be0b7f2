"""Tests of iBOTLoss against a literal transcription of the iBOT formulas."""
import math

import pytest
import torch

# The centres' distributed update lives with DINO's loss, which iBOT's reuses.
import hirl_mm.models.losses.dino_loss as center_module
from hirl_mm.models.losses.ibot_loss import iBOTLoss
from hirl_mm.registry import MODELS

B, NG, NL, K, N, KP = 2, 2, 3, 5, 4, 3


def softmax_row(x, temp):
    """softmax(x / temp) of one row, written out."""
    e = [math.exp(float(v) / temp) for v in x]
    z = sum(e)
    return [v / z for v in e]


def ce(teacher_row, student_row, teacher_temp, student_temp=0.1):
    p_t = softmax_row(teacher_row, teacher_temp)
    p_s = softmax_row(student_row, student_temp)
    return sum(-pt * math.log(ps) for pt, ps in zip(p_t, p_s))


def naive_ibot(s_cls, s_patch, t_cls, t_patch, masks, center, patch_center, t_temp=0.07,
               t_patch_temp=0.07, num_global=NG):
    """[CLS] over pairs v != q, patch term over v == q on masked patches; unweighted."""
    batch = t_cls.shape[0] // num_global
    num_crops = s_cls.shape[0] // batch
    cls_total, cls_pairs, patch_total = 0., 0, 0.
    for q in range(num_global):
        for v in range(num_crops):
            if v == q:
                crop = 0.
                for b in range(batch):
                    r = q * batch + b
                    masked = [n for n in range(t_patch.shape[1]) if masks[r, n]]
                    terms = [ce(t_patch[r, n] - patch_center[0, 0], s_patch[r, n], t_patch_temp)
                             for n in masked]
                    crop += sum(terms) / max(len(masked), 1)
                patch_total += crop / batch
            else:
                crop = 0.
                for b in range(batch):
                    crop += ce(t_cls[q * batch + b] - center[0], s_cls[v * batch + b], t_temp)
                cls_total += crop / batch
                cls_pairs += 1
    return cls_total / cls_pairs, patch_total / num_global, cls_pairs


def make_inputs(seed=0, num_global=NG, num_local=NL):
    g = torch.Generator().manual_seed(seed)
    rows = num_global * B
    s_cls = torch.randn((num_global + num_local) * B, K, generator=g, dtype=torch.float64)
    s_patch = torch.randn(rows, N, KP, generator=g, dtype=torch.float64)
    t_cls = torch.randn(rows, K, generator=g, dtype=torch.float64)
    t_patch = torch.randn(rows, N, KP, generator=g, dtype=torch.float64)
    masks = torch.rand(rows, N, generator=g) < 0.5
    masks[0] = torch.tensor([True, False, True, False])  # at least some masked patches
    return s_cls, s_patch, t_cls, t_patch, masks


def new_loss(**kwargs):
    return iBOTLoss(out_channels=K, patch_out_channels=KP, **kwargs).double()


def test_matches_transcription_with_old_centers_then_updates():
    inputs = make_inputs()
    loss_fn = new_loss(center_momentum=0.8, patch_center_momentum=0.6)
    old_c = torch.linspace(-1, 1, K, dtype=torch.float64)[None]
    old_pc = torch.linspace(0.5, -0.5, KP, dtype=torch.float64)[None, None]
    loss_fn.center.copy_(old_c)
    loss_fn.patch_center.copy_(old_pc)
    losses = loss_fn(*inputs)
    exp_cls, exp_patch, pairs = naive_ibot(*inputs, old_c, old_pc)
    assert pairs == 8  # 2 global teacher crops x 5 student crops - 2 same-view pairs
    assert set(losses) == {'loss_cls', 'loss_patch'}
    assert losses['loss_cls'].item() == pytest.approx(exp_cls, rel=1e-9)
    assert losses['loss_patch'].item() == pytest.approx(exp_patch, rel=1e-9)

    t_cls, t_patch = inputs[2], inputs[3]
    for c in range(K):
        mean = sum(float(t_cls[r, c]) for r in range(NG * B)) / (NG * B)
        assert loss_fn.center[0, c].item() == pytest.approx(0.8 * old_c[0, c].item() + 0.2 * mean)
    for c in range(KP):
        image_means = [sum(float(t_patch[r, n, c]) for n in range(N)) / N for r in range(NG * B)]
        mean = sum(image_means) / (NG * B)
        assert loss_fn.patch_center[0, 0, c].item() == pytest.approx(
            0.6 * old_pc[0, 0, c].item() + 0.4 * mean)


def test_only_masked_patches_count():
    s_cls, s_patch, t_cls, t_patch, masks = make_inputs()
    loss_fn = new_loss()
    base = loss_fn(s_cls, s_patch, t_cls, t_patch, masks, update_center=False)['loss_patch']
    changed = s_patch.clone()
    changed[~masks] = torch.randn(int((~masks).sum()), KP, dtype=torch.float64) * 10
    same = loss_fn(s_cls, changed, t_cls, t_patch, masks, update_center=False)['loss_patch']
    assert same.item() == pytest.approx(base.item())
    changed = s_patch.clone()
    changed[0, 0, 0] += 1.0  # patch 0 of image 0 is masked
    moved = loss_fn(s_cls, changed, t_cls, t_patch, masks, update_center=False)['loss_patch']
    assert abs(moved.item() - base.item()) > 1e-6


def test_image_without_masked_patches_adds_zero():
    s_cls, s_patch, t_cls, t_patch, masks = make_inputs()
    masks[1] = False  # image 1 of global crop 0
    s_patch.requires_grad_(True)
    loss = new_loss()(s_cls, s_patch, t_cls, t_patch, masks)['loss_patch']
    _, expected, _ = naive_ibot(s_cls, s_patch.detach(), t_cls, t_patch, masks,
                                torch.zeros(1, K), torch.zeros(1, 1, KP))
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    loss.backward()
    assert torch.isfinite(s_patch.grad).all() and not s_patch.grad[1].any()

    # No masked patch at all: a finite zero, with finite gradients.
    s_patch.grad = None
    loss = new_loss()(s_cls, s_patch, t_cls, t_patch, torch.zeros_like(masks))['loss_patch']
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(s_patch.grad).all()


def test_patch_term_compares_same_crop_only():
    s_cls, s_patch, t_cls, t_patch, masks = make_inputs()
    masks[:] = True
    s_patch.requires_grad_(True)
    new_loss()(s_cls, s_patch, t_cls, t_patch, masks)['loss_patch'].backward()
    grad = s_patch.grad.clone()
    t_changed = t_patch.clone()
    t_changed[B:] = torch.randn(B, N, KP, dtype=torch.float64)  # teacher crop 1 only
    s_patch.grad = None
    new_loss()(s_cls, s_patch, t_cls, t_changed, masks)['loss_patch'].backward()
    assert torch.allclose(s_patch.grad[:B], grad[:B])  # student crop 0 unaffected
    assert not torch.allclose(s_patch.grad[B:], grad[B:])


def test_temperatures_and_lambdas():
    inputs = make_inputs()
    base = new_loss()(*inputs)
    loss_fn = new_loss()
    loss_fn.teacher_temp = 0.04
    loss_fn.teacher_patch_temp = 0.05
    losses = loss_fn(*inputs)
    exp_cls, exp_patch, _ = naive_ibot(*inputs, torch.zeros(1, K), torch.zeros(1, 1, KP),
                                       t_temp=0.04, t_patch_temp=0.05)
    assert losses['loss_cls'].item() == pytest.approx(exp_cls, rel=1e-9)
    assert losses['loss_patch'].item() == pytest.approx(exp_patch, rel=1e-9)
    assert abs(losses['loss_cls'].item() - base['loss_cls'].item()) > 1e-6
    assert abs(losses['loss_patch'].item() - base['loss_patch'].item()) > 1e-6

    weighted = new_loss(lambda_cls=0.5, lambda_patch=2.0)(*inputs)
    assert weighted['loss_cls'].item() == pytest.approx(0.5 * base['loss_cls'].item())
    assert weighted['loss_patch'].item() == pytest.approx(2.0 * base['loss_patch'].item())


def test_update_center_false_and_state_dict():
    inputs = make_inputs()
    loss_fn = new_loss()
    loss_fn(*inputs, update_center=False)
    assert not loss_fn.center.any() and not loss_fn.patch_center.any()
    loss_fn(*inputs)
    state = loss_fn.state_dict()
    assert set(state) == {'center', 'patch_center'}
    assert state['center'].shape == (1, K) and state['patch_center'].shape == (1, 1, KP)
    resumed = new_loss()
    resumed.load_state_dict(state)
    assert torch.equal(resumed.patch_center, loss_fn.patch_center)


def test_centers_are_averaged_over_ranks(monkeypatch):
    # A second rank whose teacher outputs all equal 2; all_reduce adds its row sums.
    inputs = make_inputs()
    calls = []

    def fake_all_reduce(data, op='sum'):
        calls.append(op)
        data.add_(torch.full_like(data, 2.0 * NG * B))

    monkeypatch.setattr(center_module, 'all_reduce', fake_all_reduce)
    monkeypatch.setattr(center_module, 'get_world_size', lambda: 2)
    loss_fn = new_loss(center_momentum=0.5, patch_center_momentum=0.5)
    loss_fn(*inputs)
    assert calls == ['sum', 'sum']
    assert torch.allclose(loss_fn.center[0], 0.5 * (inputs[2].mean(0) + 2.0) / 2)
    assert torch.allclose(loss_fn.patch_center[0, 0], 0.5 * (inputs[3].mean((0, 1)) + 2.0) / 2)


def test_gradients_flow_to_student_only():
    inputs = [x.requires_grad_(True) if x.is_floating_point() else x for x in make_inputs()]
    losses = new_loss()(*inputs)
    (losses['loss_cls'] + losses['loss_patch']).backward()
    s_cls, s_patch, t_cls, t_patch, _ = inputs
    assert s_cls.grad.abs().sum() > 0 and s_patch.grad.abs().sum() > 0
    assert t_cls.grad is None and t_patch.grad is None


@pytest.mark.parametrize('field, shape, match', [
    (0, (9, K), 'not divisible'),
    (2, (5, K), 'num_global_crops'),
    (0, (10, K + 1), 'out_channels'),
    (1, (4, N, KP + 1), 'patch_out_channels'),
    (1, (4, N + 1, KP), 'teacher_patch'),
    (4, (4, N + 1), 'masks cover'),
    (4, (4, 2, 2), r'masks must be'),
    (0, (2, K), 'global crops'),
])
def test_bad_shapes_raise(field, shape, match):
    inputs = list(make_inputs())
    inputs[field] = torch.zeros(shape, dtype=inputs[field].dtype)
    with pytest.raises(ValueError, match=match):
        new_loss()(*inputs)


def test_builds_from_registry():
    loss_fn = MODELS.build(dict(type='iBOTLoss', out_channels=8, patch_out_channels=6))
    assert isinstance(loss_fn, iBOTLoss)
    assert loss_fn.center.shape == (1, 8) and loss_fn.patch_center.shape == (1, 1, 6)
    assert loss_fn.teacher_patch_temp == 0.07 and loss_fn.num_global_crops == 2
