"""DINONeck / iBOTNeck: the DINO projection head, transcribed against its definition."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import hirl_mm  # noqa: F401
from hirl_mm.models.necks import DINONeck, WeightNormLinear, iBOTNeck


def test_weight_norm_linear_is_g_times_v_over_norm():
    layer = WeightNormLinear(4, 3, fix_norm=False)
    with torch.no_grad():
        layer.weight_g.copy_(torch.tensor([[2.], [1.], [.5]]))
    x = torch.randn(5, 4)
    v = layer.weight_v
    expected = x @ (layer.weight_g * v / v.norm(dim=1, keepdim=True)).t()
    torch.testing.assert_close(layer(x), expected)
    assert not WeightNormLinear(4, 3, fix_norm=True).weight_g.requires_grad


def test_mlp_layout_and_forward():
    neck = DINONeck(in_channels=8, out_channels=10, hidden_channels=16,
                    bottleneck_channels=4, num_layers=3)
    neck.init_weights()
    linears = [m for m in neck.mlp if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8, 16), (16, 16), (16, 4)]
    assert sum(isinstance(m, nn.GELU) for m in neck.mlp) == 2
    assert all(torch.all(m.bias == 0) for m in linears)
    x = torch.randn(3, 8)
    z = F.normalize(neck.mlp(x), dim=-1)
    scores, bottleneck = neck((x, ))
    torch.testing.assert_close(scores, neck.last_layer(z))
    torch.testing.assert_close(bottleneck, neck.mlp(x))  # HIRL's embedding: the last output
    # Tokens: the same MLP on every token.
    tokens = torch.randn(2, 5, 8)
    torch.testing.assert_close(neck((tokens, ))[0][:, 1], neck((tokens[:, 1], ))[0])


def test_ibot_neck_scores_cls_and_patches():
    neck = iBOTNeck(in_channels=8, out_channels=10, patch_out_channels=10,
                    hidden_channels=16, bottleneck_channels=4)
    tokens = torch.randn(2, 5, 8)
    cls_scores, patch_scores, bottleneck = neck((tokens, ))
    assert cls_scores.shape == (2, 10) and patch_scores.shape == (2, 4, 10)
    torch.testing.assert_close(bottleneck, neck.mlp(tokens[:, 0]))
    local_scores, local_bottleneck = neck((tokens, ), with_patches=False)
    torch.testing.assert_close(local_scores, cls_scores)
    torch.testing.assert_close(local_bottleneck, bottleneck)
    # Shared head: one set of prototype weights, saved once.
    assert sum('last_layer' in k for k in neck.state_dict()) == 2
    separate = iBOTNeck(in_channels=8, out_channels=10, patch_out_channels=6,
                        hidden_channels=16, bottleneck_channels=4, shared_head=False)
    assert separate((tokens, ))[1].shape == (2, 4, 6)
    with pytest.raises(ValueError, match='shared_head=False'):
        iBOTNeck(in_channels=8, out_channels=10, patch_out_channels=6)
    with pytest.raises(ValueError, match="out_type='raw'"):
        neck((torch.randn(2, 8), ))


def test_cls_avgpool_neck_concatenates_cls_and_mean_patch():
    from hirl_mm.models.necks import ClsAvgPoolNeck
    tokens = torch.randn(2, 5, 8)
    out = ClsAvgPoolNeck()((tokens, ))[0]
    torch.testing.assert_close(out, torch.cat([tokens[:, 0], tokens[:, 1:].mean(1)], -1))
    with pytest.raises(ValueError, match="out_type='raw'"):
        ClsAvgPoolNeck()((torch.randn(2, 8), ))
