import pytest
import torch
from torch import nn

from hirl_mm.models.utils.backbone_capture import find_view_output, record_calls


class TupleNet(nn.Module):
    """Returns an mmpretrain-like tuple of stage outputs."""

    def forward(self, x):
        return (x * 2, x.mean(dim=(2, 3)))


def _views(batch=3):
    torch.manual_seed(0)
    return [torch.randn(batch, 3, 4, 4) for _ in range(2)]


def test_record_calls_removes_hook():
    net = TupleNet()
    with record_calls(net) as calls:
        net(torch.randn(2, 3, 4, 4))
        net(torch.randn(1, 3, 4, 4))
    net(torch.randn(5, 3, 4, 4))
    assert [c[0].shape[0] for c in calls] == [2, 1]
    assert not net._forward_hooks


@pytest.mark.parametrize('layout', ['separate', 'stacked', 'interleaved'])
def test_find_view_output_layouts(layout):
    v0, v1 = _views()
    net = TupleNet()
    with record_calls(net) as calls:
        if layout == 'separate':  # MoCo / BYOL / SimSiam
            net(v0)
            net(v1)
        elif layout == 'stacked':  # SwAV
            net(torch.cat([v0, v1]))
        else:  # SimCLR
            net(torch.stack([v0, v1], 1).reshape(-1, 3, 4, 4))
    for view in (v0, v1):
        out = find_view_output(calls, view)
        assert isinstance(out, tuple)
        torch.testing.assert_close(out[0], view * 2)
        torch.testing.assert_close(out[1], view.mean(dim=(2, 3)))


def test_find_view_output_keeps_graph():
    v0, _ = _views()
    v0.requires_grad_(True)
    net = TupleNet()
    with record_calls(net) as calls:
        net(v0)
    find_view_output(calls, v0)[1].sum().backward()
    assert v0.grad is not None


def test_find_view_output_error_names_fix():
    v0, v1 = _views()
    net = TupleNet()
    with record_calls(net) as calls:
        net(v1 + 1)
    with pytest.raises(RuntimeError, match='could not find the view'):
        find_view_output(calls, v0)


def test_find_view_output_shuffled_rows():
    v0, v1 = _views(batch=5)
    perm = torch.tensor([3, 0, 4, 1, 2])
    net = TupleNet()
    with record_calls(net) as calls:
        net(torch.cat([v1, v0[perm]]))  # e.g. MoCo's batch shuffle of the keys
    torch.testing.assert_close(find_view_output(calls, v0)[0], v0 * 2)


def test_find_view_output_tells_nearly_identical_rows_apart():
    """Rows that differ in one pixel by a hair (another view of the same image, say) are not
    confused: the match is exact, not a nearest float fingerprint."""
    torch.manual_seed(0)
    v0 = torch.rand(64, 3, 4, 4)
    v1 = v0.clone()
    v1[:, 0, 0, 0] = torch.nextafter(v1[:, 0, 0, 0], torch.tensor(2.0))
    net = TupleNet()
    with record_calls(net) as calls:
        net(torch.stack([v1, v0], 1).reshape(-1, 3, 4, 4))
    torch.testing.assert_close(find_view_output(calls, v0)[0], v0 * 2, rtol=0, atol=0)
    torch.testing.assert_close(find_view_output(calls, v1)[0], v1 * 2, rtol=0, atol=0)


def test_rows_equal_on_the_sampled_columns_are_told_apart():
    """Large images are first matched on a sample of their columns; rows that agree on all
    sampled columns and differ elsewhere fall back to the whole-row hash, still exact."""
    from hirl_mm.models.utils.backbone_capture import SAMPLED_COLUMNS
    size = 28  # 784 values per row, more than SAMPLED_COLUMNS
    assert size * size > SAMPLED_COLUMNS
    images = torch.zeros(8, 1, size, size)
    images[:, 0, 0, 1] = torch.arange(8.)  # column 1 is not among the sampled ones
    net = TupleNet()
    with record_calls(net) as calls:
        net(images)
    wanted = images[[3, 1, 6]].clone()
    torch.testing.assert_close(find_view_output(calls, wanted)[0], wanted * 2, rtol=0, atol=0)
    shuffled = images[torch.randperm(8)].clone()
    torch.testing.assert_close(find_view_output(calls, shuffled)[0], shuffled * 2, rtol=0,
                               atol=0)
