"""Tests of the semantic path head."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from hirl_mm.models.heads import SemanticPathHead
from hirl_mm.models.losses import SemanticPathLoss
from hirl_mm.models.utils import lift_paths
from hirl_mm.registry import MODELS

DIM, KS = 16, (12, 5, 2)


def make_hierarchy(seed=0):
    """Normalised centroids and a parent chain with every parent used."""
    g = torch.Generator().manual_seed(seed)
    centroids = [F.normalize(torch.randn(k, DIM, generator=g), dim=1) for k in KS]
    parents = []
    for k_child, k_parent in zip(KS[:-1], KS[1:]):
        parent = torch.randint(k_parent, (k_child, ), generator=g)
        parent[:k_parent] = torch.arange(k_parent)
        parents.append(parent)
    return centroids, parents


def build_head(**kwargs):
    cfg = dict(type='SemanticPathHead', in_channels=DIM, num_levels=3, num_neg_path=20)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def test_build_and_structure():
    head = build_head(num_mlp_layer=3, loss=dict(type='SemanticPathLoss', loss_weight=2.))
    assert isinstance(head, SemanticPathHead)
    assert isinstance(head.loss_module, SemanticPathLoss)
    assert head.loss_module.loss_weight == 2.
    assert len(head.projectors) == 3
    for mlp in head.projectors:  # num_mlp_layer counts the Linear layers (the reference's MLP)
        kinds = [type(m) for m in mlp]
        assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 2 + [nn.Linear]
        linears = [m for m in mlp if isinstance(m, nn.Linear)]
        assert all(m.in_features == DIM and m.out_features == DIM for m in linears)
        # No bias before a BatchNorm; the last layer keeps its bias.
        assert [m.bias is not None for m in linears] == [False, False, True]
    two = build_head(num_mlp_layer=2).projectors[0]
    assert [type(m) for m in two] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert two[0].bias is None and two[3].bias is not None
    assert [type(m) for m in build_head(num_mlp_layer=1).projectors[0]] == [nn.Linear]
    with pytest.raises(ValueError, match='num_mlp_layer >= 1'):
        build_head(num_mlp_layer=0)


def test_forward_shapes_and_unit_norm():
    head = build_head()
    z = head(torch.randn(6, DIM))
    assert len(z) == 3
    for level in z:
        assert level.shape == (6, DIM)
        torch.testing.assert_close(level.norm(dim=1), torch.ones(6))
    with pytest.raises(ValueError, match=f'in_channels={DIM + 1}'):
        head(torch.randn(6, DIM + 1))


def test_warmup_zero_loss_touches_every_parameter():
    head = build_head()
    x = torch.randn(6, DIM, requires_grad=True)
    losses = head.loss(x)
    assert set(losses) == {'loss_semantic'}
    assert losses['loss_semantic'].item() == 0
    losses['loss_semantic'].backward()
    params = list(head.named_parameters())
    assert params
    assert all(p.grad is not None for _, p in params), [n for n, p in params if p.grad is None]


def test_real_loss_backprops_into_input():
    torch.manual_seed(0)
    head = build_head()
    centroids, parents = make_hierarchy()
    x = torch.randn(8, DIM, requires_grad=True)
    pos_paths = lift_paths(torch.randint(KS[0], (8, )), parents)
    loss = head.loss(x, pos_paths, centroids, parents)['loss_semantic']
    assert loss.dim() == 0 and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in head.parameters())
    assert all(c.grad is None for c in centroids)


def test_loss_randomness_follows_global_seed():
    head = build_head()
    head.eval()  # BatchNorm in eval: differences come only from negative sampling
    centroids, parents = make_hierarchy()
    x = torch.randn(4, DIM)
    pos_paths = lift_paths(torch.arange(4), parents)
    torch.manual_seed(1)
    a = head.loss(x, pos_paths, centroids, parents)['loss_semantic']
    b = head.loss(x, pos_paths, centroids, parents)['loss_semantic']
    torch.manual_seed(1)
    c = head.loss(x, pos_paths, centroids, parents)['loss_semantic']
    assert torch.equal(a, c) and not torch.equal(a, b)


def test_loss_argument_errors():
    head = build_head()
    centroids, parents = make_hierarchy()
    x = torch.randn(4, DIM)
    pos_paths = lift_paths(torch.arange(4), parents)
    with pytest.raises(ValueError, match='required'):
        head.loss(x, None, centroids, parents)
    with pytest.raises(ValueError, match='levels of centroids'):
        head.loss(x, pos_paths, centroids[:2], parents)
    with pytest.raises(ValueError, match='parent tensors'):
        head.loss(x, pos_paths, centroids, parents[:1])
    with pytest.raises(ValueError, match='>= 1'):
        SemanticPathHead(in_channels=DIM, num_levels=0)
