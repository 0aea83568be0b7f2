"""Tests of DINOLoss against a literal transcription of the DINO formula."""
import math

import pytest
import torch

import hirl_mm.models.losses.dino_loss as dino_module
from hirl_mm.models.losses.dino_loss import DINOLoss
from hirl_mm.registry import MODELS


def softmax_row(x, temp):
    """softmax(x / temp) of one row, written out."""
    e = [math.exp(float(v) / temp) for v in x]
    z = sum(e)
    return [v / z for v in e]


def naive_dino(student, teacher, center, num_global, student_temp, teacher_temp,
               skip_same_view=True):
    """Mean over pairs (teacher global q, student crop v != q) of the batch-mean CE."""
    batch = teacher.shape[0] // num_global
    num_crops = student.shape[0] // batch
    total, pairs = 0., 0
    for q in range(num_global):
        for v in range(num_crops):
            if skip_same_view and v == q:
                continue
            ce = 0.
            for b in range(batch):
                p_t = softmax_row(teacher[q * batch + b] - center[0], teacher_temp)
                p_s = softmax_row(student[v * batch + b], student_temp)
                ce += sum(-pt * math.log(ps) for pt, ps in zip(p_t, p_s))
            total += ce / batch
            pairs += 1
    return total / pairs, pairs


def make_inputs(batch=3, num_global=2, num_local=3, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn((num_global + num_local) * batch, k, generator=g, dtype=torch.float64)
    teacher = torch.randn(num_global * batch, k, generator=g, dtype=torch.float64)
    return student, teacher


def test_matches_transcription_and_pair_count():
    student, teacher = make_inputs()
    loss_fn = DINOLoss(out_channels=5).double()
    loss = loss_fn(student, teacher)
    expected, pairs = naive_dino(student, teacher, torch.zeros(1, 5), 2, 0.1, 0.07)
    assert pairs == 8  # 2 global teacher crops x 5 student crops - 2 same-view pairs
    assert loss.dim() == 0
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    # Including the same-view pairs would give a different value.
    wrong, _ = naive_dino(student, teacher, torch.zeros(1, 5), 2, 0.1, 0.07, False)
    assert abs(loss.item() - wrong) > 1e-6


def test_same_view_pair_is_skipped():
    # With one global crop, the student's crop 0 is never compared with anything.
    student, teacher = make_inputs(num_global=1, num_local=2)
    loss_fn = DINOLoss(out_channels=5, num_global_crops=1).double()
    base = loss_fn(student, teacher, update_center=False)
    changed = student.clone()
    changed[:3] = torch.randn(3, 5, dtype=torch.float64) * 10
    assert loss_fn(changed, teacher, update_center=False).item() == pytest.approx(base.item())
    # A local crop does count.
    changed = student.clone()
    changed[3:6] += torch.randn(3, 5, dtype=torch.float64)
    assert abs(loss_fn(changed, teacher, update_center=False).item() - base.item()) > 1e-6
    _, pairs = naive_dino(student, teacher, torch.zeros(1, 5), 1, 0.1, 0.07)
    assert pairs == 2


def test_centering_uses_old_center_then_updates():
    student, teacher = make_inputs()
    loss_fn = DINOLoss(out_channels=5, center_momentum=0.8).double()
    old = torch.linspace(-1, 1, 5, dtype=torch.float64)[None]
    loss_fn.center.copy_(old)
    loss = loss_fn(student, teacher)
    expected, _ = naive_dino(student, teacher, old, 2, 0.1, 0.07)
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    without_center, _ = naive_dino(student, teacher, torch.zeros(1, 5), 2, 0.1, 0.07)
    assert abs(loss.item() - without_center) > 1e-6
    mean = [sum(float(teacher[r, c]) for r in range(6)) / 6 for c in range(5)]
    for c in range(5):
        assert loss_fn.center[0, c].item() == pytest.approx(0.8 * old[0, c].item() + 0.2 * mean[c])


def test_update_center_false_leaves_center():
    student, teacher = make_inputs()
    loss_fn = DINOLoss(out_channels=5).double()
    loss_fn(student, teacher, update_center=False)
    assert torch.equal(loss_fn.center, torch.zeros(1, 5, dtype=torch.float64))


def test_center_is_averaged_over_ranks(monkeypatch):
    # Simulate a second rank whose teacher rows all equal 3; all_reduce adds its row sum.
    student, teacher = make_inputs()
    calls = []

    def fake_all_reduce(data, op='sum'):
        calls.append(op)
        data.add_(torch.full_like(data, 3.0 * teacher.shape[0]))

    monkeypatch.setattr(dino_module, 'all_reduce', fake_all_reduce)
    monkeypatch.setattr(dino_module, 'get_world_size', lambda: 2)
    loss_fn = DINOLoss(out_channels=5, center_momentum=0.5).double()
    loss_fn(student, teacher)
    assert calls == ['sum']
    expected = 0.5 * (teacher.mean(0) + 3.0) / 2
    assert torch.allclose(loss_fn.center[0], expected)


def test_teacher_temperature_sharpens():
    student, teacher = make_inputs()
    loss_fn = DINOLoss(out_channels=5, student_temp=0.2).double()
    loss_fn.teacher_temp = 0.04  # what the warm-up hook does
    loss = loss_fn(student, teacher, update_center=False)
    expected, _ = naive_dino(student, teacher, torch.zeros(1, 5), 2, 0.2, 0.04)
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    other, _ = naive_dino(student, teacher, torch.zeros(1, 5), 2, 0.2, 0.07)
    assert abs(loss.item() - other) > 1e-6


def test_loss_weight():
    student, teacher = make_inputs()
    plain = DINOLoss(out_channels=5).double()(student, teacher)
    weighted = DINOLoss(out_channels=5, loss_weight=0.25).double()(student, teacher)
    assert weighted.item() == pytest.approx(0.25 * plain.item())


def test_gradients_flow_to_student_only():
    student, teacher = make_inputs()
    student.requires_grad_(True)
    teacher.requires_grad_(True)
    DINOLoss(out_channels=5).double()(student, teacher).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_center_in_state_dict_and_resumes():
    student, teacher = make_inputs()
    loss_fn = DINOLoss(out_channels=5).double()
    loss_fn(student, teacher)
    state = loss_fn.state_dict()
    assert set(state) == {'center'} and state['center'].shape == (1, 5)
    resumed = DINOLoss(out_channels=5).double()
    resumed.load_state_dict(state)
    assert torch.equal(resumed.center, loss_fn.center)


@pytest.mark.parametrize('student_shape, teacher_shape, match', [
    ((10, 5), (6, 5), 'not divisible'),  # 10 rows with batch size 3
    ((15, 5), (5, 5), 'num_global_crops'),  # 5 teacher rows, 2 global crops
    ((15, 4), (6, 4), 'out_channels'),
    ((15, 5, 1), (6, 5), r'\(rows, K\)'),
    ((3, 5), (6, 5), 'fewer than'),
])
def test_bad_shapes_raise(student_shape, teacher_shape, match):
    loss_fn = DINOLoss(out_channels=5)
    with pytest.raises(ValueError, match=match):
        loss_fn(torch.randn(student_shape), torch.randn(teacher_shape))


def test_single_crop_raises():
    loss_fn = DINOLoss(out_channels=5, num_global_crops=1)
    with pytest.raises(ValueError, match='at least two crops'):
        loss_fn(torch.randn(3, 5), torch.randn(3, 5))


def test_builds_from_registry():
    loss_fn = MODELS.build(dict(type='DINOLoss', out_channels=8))
    assert isinstance(loss_fn, DINOLoss)
    assert loss_fn.center.shape == (1, 8) and not loss_fn.center.any()
    assert loss_fn.teacher_temp == 0.07 and loss_fn.num_global_crops == 2
