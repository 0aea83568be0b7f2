"""Tests of semantic path lifting and negative path sampling."""
import pytest
import torch

from hirl_mm.models.utils import lift_paths, sample_negative_paths


def make_parents(ks=(20, 8, 3), seed=0):
    """Random parent chain where every parent cluster has at least one child."""
    g = torch.Generator().manual_seed(seed)
    parents = []
    for k_child, k_parent in zip(ks[:-1], ks[1:]):
        parent = torch.randint(k_parent, (k_child, ), generator=g)
        parent[:k_parent] = torch.arange(k_parent)
        parents.append(parent)
    return parents


def test_lift_matches_manual_following():
    parents = make_parents()
    level0 = torch.randint(20, (4, 6), generator=torch.Generator().manual_seed(1))
    paths = lift_paths(level0, parents)
    assert paths.shape == (4, 6, 3) and paths.dtype == torch.long
    for idx in range(level0.numel()):
        i, j = divmod(idx, 6)
        c = int(level0[i, j])
        expected = [c]
        for parent in parents:
            c = int(parent[c])
            expected.append(c)
        assert paths[i, j].tolist() == expected


def test_lift_shapes_and_single_level():
    parents = make_parents()
    assert lift_paths(torch.tensor(5), parents).shape == (3, )
    assert lift_paths(torch.arange(20, dtype=torch.int32), parents).shape == (20, 3)
    one_level = lift_paths(torch.tensor([[2, 0]]), [])
    assert one_level.tolist() == [[[2], [0]]]


@pytest.mark.parametrize('level0, parents, match', [
    (torch.tensor([0, 20]), None, r'level0 holds indices outside \[0, 20\)'),
    (torch.tensor([-1]), None, 'level0'),
    (torch.tensor([0.]), None, 'integer tensor'),
    (torch.tensor([0]), [torch.tensor([0, 5]), torch.tensor([0, 0])],
     r'parents\[0\] holds indices outside \[0, 2\)'),
    (torch.tensor([0]), [torch.tensor([0, 1]), torch.tensor([0, -1])],
     r'parents\[1\] holds indices outside the non-negative integers'),
    (torch.tensor([0]), [torch.zeros(2, 2, dtype=torch.long)], '1-D'),
    (torch.tensor([0]), [torch.zeros(2)], 'integer tensor'),
])
def test_lift_errors(level0, parents, match):
    with pytest.raises(ValueError, match=match):
        lift_paths(level0, make_parents() if parents is None else parents)


def test_sampled_shape_range_and_parent_chain():
    parents = make_parents()
    paths = sample_negative_paths(6, 50, 20, parents,
                                  generator=torch.Generator().manual_seed(0))
    assert paths.shape == (6, 50, 3) and paths.dtype == torch.long
    for l, k in enumerate((20, 8, 3)):
        assert paths[..., l].min() >= 0 and paths[..., l].max() < k
    # Each step of a path is the parent of the previous one.
    for l, parent in enumerate(parents):
        assert torch.equal(paths[..., l + 1], parent[paths[..., l]])


def test_sampling_is_uniform_on_level0():
    num_level0, n, p = 10, 50, 400
    paths = sample_negative_paths(n, p, num_level0, make_parents((10, 4)),
                                  generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(paths[..., 0].flatten(), minlength=num_level0).double()
    expected = n * p / num_level0
    # Chi-square with 9 dof: p(stat > 27.9) = 0.001.
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < 27.9, counts


def test_sampling_generator_and_global_seed():
    parents = make_parents()
    a = sample_negative_paths(3, 10, 20, parents, generator=torch.Generator().manual_seed(7))
    b = sample_negative_paths(3, 10, 20, parents, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    torch.manual_seed(3)
    c = sample_negative_paths(3, 10, 20, parents)
    d = sample_negative_paths(3, 10, 20, parents)
    torch.manual_seed(3)
    e = sample_negative_paths(3, 10, 20, parents)
    assert torch.equal(c, e) and not torch.equal(c, d)


def test_sampling_edge_cases_and_errors():
    assert sample_negative_paths(2, 0, 20, make_parents()).shape == (2, 0, 3)
    single = sample_negative_paths(2, 5, 4, [])
    assert single.shape == (2, 5, 1) and single.max() < 4
    with pytest.raises(ValueError, match='does not match'):
        sample_negative_paths(2, 5, 19, make_parents())
    with pytest.raises(ValueError, match='num_level0'):
        sample_negative_paths(2, 5, 0, [])
    with pytest.raises(ValueError, match='>= 0'):
        sample_negative_paths(-1, 5, 20, make_parents())
    with pytest.raises(ValueError, match=r'parents\[0\]'):
        sample_negative_paths(2, 5, 2, [torch.tensor([0, 3]), torch.tensor([0, 0])])
