"""Tests of the semantic path discrimination loss against a literal transcription."""
import math
from typing import List, Sequence, Tuple

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from hirl_mm.models.losses import SemanticPathLoss, semantic_path_loss
from hirl_mm.registry import MODELS


def naive_loss(embeddings: Sequence[Tensor], centroids: Sequence[Tensor], pos_paths: Tensor,
               neg_paths: Tensor, eps: float = 1e-6, mask: bool = True) -> Tensor:
    """The formula written out with loops over images and paths.

    ``mask=False`` counts every drawn path as a negative (a deliberately wrong variant).
    """
    num_images, num_neg, num_levels = neg_paths.shape

    def sim(i: int, path: Tensor) -> Tensor:
        s = torch.ones((), dtype=embeddings[0].dtype)
        for l in range(num_levels):
            cos = torch.cosine_similarity(embeddings[l][i], centroids[l][path[l]], dim=0)
            s = s * (1 + cos) / 2
        return s

    total = 0.
    for i in range(num_images):
        loss_pos = -torch.log(sim(i, pos_paths[i]) + eps)
        neg_sum, count = 0., 0
        for p in range(num_neg):
            if mask and torch.equal(neg_paths[i, p], pos_paths[i]):
                continue  # not a true negative
            neg_sum = neg_sum - torch.log(1 - sim(i, neg_paths[i, p]) + eps)
            count += 1
        loss_neg = neg_sum / (count + eps)
        total = total + (loss_pos + loss_neg) / 2
    return total / num_images


def make_inputs(num_images: int = 5, num_neg: int = 7, ks: Tuple[int, ...] = (9, 4, 2),
                dim: int = 6, dtype: torch.dtype = torch.float32,
                seed: int = 0) -> Tuple[List[Tensor], List[Tensor], Tensor, Tensor]:
    """Random normalised embeddings / centroids and random (unconstrained) paths."""
    g = torch.Generator().manual_seed(seed)
    emb = [F.normalize(torch.randn(num_images, dim, generator=g, dtype=dtype), dim=1)
           for _ in ks]
    cen = [F.normalize(torch.randn(k, dim, generator=g, dtype=dtype), dim=1) for k in ks]
    pos = torch.stack([torch.randint(k, (num_images, ), generator=g) for k in ks], dim=1)
    neg = torch.stack([torch.randint(k, (num_images, num_neg), generator=g) for k in ks],
                      dim=2)
    return emb, cen, pos, neg


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('ks', [(9, 4, 2), (5, ), (3, 3)])
def test_matches_naive(seed, ks):
    emb, cen, pos, neg = make_inputs(ks=ks, seed=seed)
    ours = semantic_path_loss(emb, cen, pos, neg)
    ref = naive_loss(emb, cen, pos, neg)
    assert ours.dim() == 0
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)


def test_non_true_negatives_are_masked():
    emb, cen, pos, neg = make_inputs(num_images=4, num_neg=6)
    # Copy the positive path into some slots, and a path equal on all but one level.
    neg[0, 1] = pos[0]
    neg[0, 4] = pos[0]
    neg[2, 0] = pos[2]
    neg[3, 2] = pos[3]
    neg[3, 2, -1] = (pos[3, -1] + 1) % cen[-1].shape[0]  # differs at one level: true neg
    ours = semantic_path_loss(emb, cen, pos, neg)
    torch.testing.assert_close(ours, naive_loss(emb, cen, pos, neg), atol=1e-5, rtol=1e-5)
    # Masking matters: treating every draw as a negative gives a different value.
    assert not torch.isclose(ours, naive_loss(emb, cen, pos, neg, mask=False))


def test_all_negatives_equal_positive():
    emb, cen, pos, neg = make_inputs(num_images=3, num_neg=5)
    neg = pos.unsqueeze(1).expand(-1, 5, -1).clone()
    ours = semantic_path_loss(emb, cen, pos, neg)
    # loss_neg -> 0, so the loss is half the mean positive term.
    s = torch.ones(3)
    for l in range(len(cen)):
        s = s * (1 + (emb[l] * cen[l][pos[:, l]]).sum(1)) / 2
    expected = (-torch.log(s + 1e-6) / 2).mean()
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ours, naive_loss(emb, cen, pos, neg), atol=1e-5, rtol=1e-5)


def test_no_negative_paths():
    emb, cen, pos, neg = make_inputs(num_neg=0)
    assert neg.shape[1] == 0
    torch.testing.assert_close(
        semantic_path_loss(emb, cen, pos, neg), naive_loss(emb, cen, pos, neg))


def test_perfect_match_is_stable():
    # Embedding equals its own centroid at every level: s = 1, loss_pos ~ 0, finite.
    emb, cen, pos, neg = make_inputs(num_images=3, num_neg=4)
    emb = [c[pos[:, l]].clone() for l, c in enumerate(cen)]
    loss = semantic_path_loss(emb, cen, pos, neg)
    assert torch.isfinite(loss)


def test_gradcheck_float64():
    emb, cen, pos, neg = make_inputs(num_images=3, num_neg=4, ks=(5, 3, 2), dim=4,
                                     dtype=torch.float64)
    neg[1, 2] = pos[1]  # include a masked negative
    emb = [e.requires_grad_() for e in emb]
    assert torch.autograd.gradcheck(
        lambda *zs: semantic_path_loss(list(zs), cen, pos, neg), tuple(emb))
    # Gradient also flows into centroids that require grad.
    cen = [c.clone().requires_grad_() for c in cen]
    assert torch.autograd.gradcheck(
        lambda *cs: semantic_path_loss([e.detach() for e in emb], list(cs), pos, neg),
        tuple(cen))


def test_grad_flows_into_embeddings_only_by_default():
    emb, cen, pos, neg = make_inputs()
    emb = [e.requires_grad_() for e in emb]
    semantic_path_loss(emb, cen, pos, neg).backward()
    assert all(e.grad is not None and torch.isfinite(e.grad).all() for e in emb)
    assert all(c.grad is None for c in cen)


def test_autocast_and_int32_paths():
    emb, cen, pos, neg = make_inputs()
    ref = semantic_path_loss(emb, cen, pos, neg)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = semantic_path_loss(emb, cen, pos.int(), neg.int())
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref)


def test_module_wrapper():
    emb, cen, pos, neg = make_inputs()
    module = MODELS.build(dict(type='SemanticPathLoss', loss_weight=0.5, eps=1e-4))
    assert isinstance(module, SemanticPathLoss)
    torch.testing.assert_close(
        module(emb, cen, pos, neg), 0.5 * semantic_path_loss(emb, cen, pos, neg, eps=1e-4))
    assert 'loss_weight=0.5' in repr(module)


def test_known_value():
    # One image, one level, cos = 0 with the positive and the negative centroid.
    emb = [torch.tensor([[1., 0.]])]
    cen = [torch.tensor([[0., 1.], [0., -1.]])]
    loss = semantic_path_loss(emb, cen, torch.tensor([[0]]), torch.tensor([[[1]]]), eps=0.)
    assert math.isclose(loss.item(), math.log(2), rel_tol=1e-6)


@pytest.mark.parametrize('case, match', [
    ('levels', 'levels of centroids'),
    ('dim', 'centroid dim'),
    ('rows', 'rows'),
    ('pos_levels', 'pos_paths has 2 levels'),
    ('neg_dims', 'neg_paths must have 3 dims'),
    ('float_paths', 'integer tensor'),
    ('pos_range', r'pos_paths\[\.\.\., 1\] holds indices outside \[0, 4\)'),
    ('neg_range', r'neg_paths\[\.\.\., 0\] holds indices outside \[0, 9\)'),
    ('neg_negative', 'neg_paths'),
    ('empty', 'empty batch'),
    ('no_levels', 'at least one level'),
])
def test_errors(case, match):
    emb, cen, pos, neg = make_inputs()
    if case == 'levels':
        cen = cen[:2]
    elif case == 'dim':
        cen[1] = torch.randn(4, 3)
    elif case == 'rows':
        emb[2] = emb[2][:3]
    elif case == 'pos_levels':
        pos = pos[:, :2]
    elif case == 'neg_dims':
        neg = neg[:, 0]
    elif case == 'float_paths':
        pos = pos.float()
    elif case == 'pos_range':
        pos[2, 1] = 4
    elif case == 'neg_range':
        neg[1, 3, 0] = 9
    elif case == 'neg_negative':
        neg[0, 0, 2] = -1
    elif case == 'empty':
        emb = [e[:0] for e in emb]
        pos, neg = pos[:0], neg[:0]
    elif case == 'no_levels':
        emb, cen = [], []
    with pytest.raises(ValueError, match=match):
        semantic_path_loss(emb, cen, pos, neg)
