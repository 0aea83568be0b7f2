"""Tests of HierarchicalKMeans (both back ends) and its result helpers."""
import sys
from typing import Tuple

import pytest
import torch
import torch.nn.functional as F

from hirl_mm.clustering import (HierarchicalClusteringResult, HierarchicalKMeans,
                                cluster_size_stats, format_cluster_size_stats)
from hirl_mm.clustering import hierarchical_kmeans as hk_module
from hirl_mm.clustering.backends import faiss_import_error
from hirl_mm.registry import CLUSTERERS

HAS_FAISS = faiss_import_error() is None
BACKENDS = [
    'torch',
    pytest.param('faiss', marks=pytest.mark.skipif(not HAS_FAISS, reason='faiss missing')),
]


def make_blobs(per_blob: int = 20, dim: int = 16, noise: float = 0.03,
               seed: int = 0) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """3 coarse groups x 3 fine blobs on the unit sphere, clearly separated.

    Fine blob ``3c+f`` is centred on ``normalise(e_c + 0.6 e_{3+3c+f})``: blobs of one
    group are closer to each other than to any other group's.

    Returns:
        (points [9*per_blob, dim], fine labels, coarse labels)
    """
    gen = torch.Generator().manual_seed(seed)
    eye = torch.eye(dim)
    centres = torch.stack([
        F.normalize(eye[c] + 0.6 * eye[3 + 3 * c + f], dim=0) for c in range(3)
        for f in range(3)
    ])
    fine = torch.arange(9).repeat_interleave(per_blob)
    noise_ = noise * torch.randn(len(fine), dim, generator=gen)
    return F.normalize(centres[fine] + noise_, dim=1), fine, fine // 3


def same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two labelings are the same partition up to a permutation of labels."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def check_structure(result: HierarchicalClusteringResult, num_points: int, dim: int,
                    num_clusters) -> None:
    """The invariants every result must satisfy."""
    assert result.num_levels == len(num_clusters)
    assert result.num_clusters == list(num_clusters)
    assert len(result.parents) == len(num_clusters) - 1
    for level, k in enumerate(num_clusters):
        c, a = result.centroids[level], result.im2cluster[level]
        assert c.shape == (k, dim) and c.dtype == torch.float32
        assert torch.isfinite(c).all()
        torch.testing.assert_close(c.norm(dim=1), torch.ones(k))
        assert a.shape == (num_points, ) and a.dtype == torch.int64
        assert 0 <= int(a.min()) and int(a.max()) < k
        sizes = result.cluster_sizes(level)
        assert sizes.shape == (k, ) and int(sizes.sum()) == num_points
        if level > 0:
            p = result.parents[level - 1]
            assert p.shape == (num_clusters[level - 1], ) and p.dtype == torch.int64
            assert 0 <= int(p.min()) and int(p.max()) < k
            assert torch.equal(a, p[result.im2cluster[level - 1]])


# A seed and number of restarts for which both back ends find the global optimum; plain
# random-init k-means can land in a local minimum on 9 equal blobs (faiss too).
BLOB_KW = dict(num_redo=10, num_iters=10, seed=0)


@pytest.mark.parametrize('backend', BACKENDS)
def test_recovers_blobs_at_both_levels(backend):
    x, fine, coarse = make_blobs()
    result = HierarchicalKMeans([9, 3], backend=backend, **BLOB_KW)(x)
    check_structure(result, len(x), x.shape[1], [9, 3])
    assert same_partition(result.im2cluster[0], fine)
    assert same_partition(result.im2cluster[1], coarse)


@pytest.mark.skipif(not HAS_FAISS, reason='faiss missing')
def test_backends_agree_on_separated_data():
    x, _, _ = make_blobs(seed=1)
    by_faiss = HierarchicalKMeans([9, 3], backend='faiss', **BLOB_KW)(x)
    by_torch = HierarchicalKMeans([9, 3], backend='torch', **BLOB_KW)(x)
    for level in range(2):
        assert same_partition(by_faiss.im2cluster[level], by_torch.im2cluster[level])


@pytest.mark.parametrize('backend', BACKENDS)
def test_structure_on_random_data(backend):
    x = torch.randn(400, 8, dtype=torch.float64)  # not normalised, not float32: still fine
    result = HierarchicalKMeans([20, 6, 2], backend=backend, num_redo=2)(x)
    check_structure(result, 400, 8, [20, 6, 2])
    moved = result.to('cpu')
    assert moved is not result and torch.equal(moved.centroids[0], result.centroids[0])


@pytest.mark.parametrize('backend', BACKENDS)
def test_deterministic_for_a_seed(backend):
    x = F.normalize(torch.randn(600, 12), dim=1)
    # Subsample (600 > 10 * 40) so that the subsampling path is covered too.
    kwargs = dict(backend=backend, num_redo=3, seed=7, max_points_per_centroid=40)
    first = HierarchicalKMeans([10, 4], **kwargs)(x)
    second = HierarchicalKMeans([10, 4], **kwargs)(x)
    for a, b in zip(first.centroids + first.parents + first.im2cluster,
                    second.centroids + second.parents + second.im2cluster):
        assert torch.equal(a, b)


def test_level_seeds_are_offsets_of_seed(monkeypatch):
    seeds = []
    hkm = HierarchicalKMeans([6, 3, 2], backend='torch', seed=5)
    inner = hkm._kmeans

    def spy(x, k, num_iters, num_redo, seed, *args):
        seeds.append(seed)
        return inner(x, k, num_iters, num_redo, seed, *args)

    hkm._kmeans = spy
    hkm(torch.randn(60, 4))
    assert seeds == [5, 6, 7]


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('kind', ['all_identical', 'repeated_rows', 'k_equals_n_with_repeats'])
def test_duplicates_do_not_crash(backend, kind):
    if kind == 'all_identical':
        x, ks = torch.full((200, 6), 0.5), [20, 5]
    elif kind == 'repeated_rows':
        x, ks = torch.randn(5, 6).repeat(40, 1), [20, 5]  # 5 distinct points, 20 clusters
    else:
        x, ks = torch.randn(4, 6).repeat(5, 1), [20, 3]  # K_0 == N, rows repeat
    result = HierarchicalKMeans(ks, backend=backend, num_redo=2)(x)
    check_structure(result, len(x), 6, ks)


def test_registry_builds_it():
    hkm = CLUSTERERS.build(dict(type='HierarchicalKMeans', num_clusters=[4, 2], backend='torch'))
    assert isinstance(hkm, HierarchicalKMeans) and hkm.backend == 'torch'
    assert 'HierarchicalKMeans' in repr(hkm)


@pytest.mark.parametrize('num_clusters, match', [
    ([], 'num_clusters is empty'),
    ([10, 0], 'positive integers'),
    ([-3], 'positive integers'),
    ([4.5], 'positive integers'),
    ([10, 10], 'strictly decreasing.*K_1=10 is equal to K_0=10'),
    ([5, 10, 2], 'strictly decreasing.*K_1=10 is larger than K_0=5'),
    (7, 'must be a list'),
])
def test_bad_num_clusters(num_clusters, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalKMeans(num_clusters, backend='torch')


@pytest.mark.parametrize('kwargs, match', [
    (dict(backend='sklearn'), 'backend must be one of'),
    (dict(num_iters=0), 'num_iters must be an integer >= 1'),
    (dict(num_redo=0), 'num_redo must be an integer >= 1'),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalKMeans([4, 2], **{'backend': 'torch', **kwargs})


def _with_bad_rows() -> torch.Tensor:
    x = torch.randn(50, 4)
    x[3, 1] = float('nan')
    x[10] = float('inf')
    return x


@pytest.mark.parametrize('features, match', [
    (torch.randn(10, 3, 2), 'must be a 2-D tensor.*got shape \\(10, 3, 2\\)'),
    (torch.randn(10), 'must be a 2-D tensor'),
    (_with_bad_rows(), 'NaN/Inf in 2 of 50 rows \\(first: row 3\\)'),
    (torch.randn(5, 4), 'num_clusters\\[0\\]=8 \\(K_0\\) is larger than the number of points N=5'),
])
def test_bad_features(features, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalKMeans([8, 2], backend='torch')(features)


def test_faiss_missing_gives_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, 'faiss', None)  # makes `import faiss` fail
    with pytest.raises(ImportError, match="pip install faiss-cpu.*backend='torch'"):
        HierarchicalKMeans([4, 2], backend='faiss')
    assert HierarchicalKMeans([4, 2], backend='auto').backend == 'torch'


@pytest.mark.parametrize('backend', BACKENDS)
def test_warns_once_per_sparse_level_through_logger(backend, monkeypatch, capfd):
    logged = []
    monkeypatch.setattr(hk_module, 'print_log',
                        lambda msg, logger=None, level=None: logged.append((msg, level)))
    # Level 0: 100 points / 20 = 5 per centroid (< 10); level 1: 20 / 10 = 2; level 2: 10 / 1.
    HierarchicalKMeans([20, 10, 1], backend=backend, num_redo=1)(torch.randn(100, 4))
    assert [m.split(':')[0] for m, _ in logged] == [
        'Hierarchical k-means level 0', 'Hierarchical k-means level 1'
    ]
    assert all(level == 30 for _, level in logged)  # logging.WARNING
    assert 'min_points_per_centroid=10' in logged[0][0]
    assert 'WARNING clustering' not in capfd.readouterr().err  # faiss kept quiet


def test_cluster_size_stats():
    result = HierarchicalClusteringResult(
        centroids=[F.normalize(torch.randn(4, 3), dim=1), F.normalize(torch.randn(2, 3), dim=1)],
        parents=[torch.tensor([0, 0, 1, 1])],
        im2cluster=[torch.tensor([0, 0, 0, 1, 3, 3]), torch.tensor([0, 0, 0, 0, 1, 1])])
    stats = cluster_size_stats(result)
    assert stats[0] == dict(level=0, num_clusters=4, num_points=6, min_size=0, median_size=1.5,
                            max_size=3, num_empty=1)
    assert stats[1] == dict(level=1, num_clusters=2, num_points=6, min_size=2, median_size=3.0,
                            max_size=4, num_empty=0)
    text = format_cluster_size_stats(stats)
    assert text.splitlines()[0] == 'level 0: K=4, sizes min/median/max 0/1.5/3, 1 empty'


def test_result_rejects_inconsistent_levels():
    with pytest.raises(ValueError, match='one parents entry per level'):
        HierarchicalClusteringResult(centroids=[torch.zeros(2, 3)], parents=[torch.zeros(2)],
                                     im2cluster=[torch.zeros(5)])
