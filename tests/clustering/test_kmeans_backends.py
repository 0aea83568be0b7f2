"""Tests of the flat k-means back ends and the torch back end's building blocks."""
import pytest
import torch

from hirl_mm.clustering.backends import faiss_import_error, get_kmeans_fn, resolve_backend
from hirl_mm.clustering.kmeans_torch import (centroid_sums, nearest_centroid,
                                             split_empty_clusters)

HAS_FAISS = faiss_import_error() is None
BACKENDS = [
    'torch',
    pytest.param('faiss', marks=pytest.mark.skipif(not HAS_FAISS, reason='faiss missing')),
]


def test_resolve_backend():
    assert resolve_backend('torch') == 'torch'
    assert resolve_backend('auto') == ('faiss' if HAS_FAISS else 'torch')
    with pytest.raises(ValueError, match='Unknown k-means backend'):
        resolve_backend('cuml')


@pytest.mark.parametrize('backend', BACKENDS)
def test_flat_kmeans_outputs(backend):
    kmeans = get_kmeans_fn(backend)
    x = torch.randn(300, 5)
    centroids, assignment = kmeans(x, 7, 10, 2, 0, 1000, 10, False)
    assert centroids.shape == (7, 5) and centroids.dtype == torch.float32
    assert assignment.shape == (300, ) and assignment.dtype == torch.int64
    # The assignment is the nearest centroid of every point.
    expected = torch.cdist(x, centroids).argmin(dim=1)
    assert (assignment == expected).float().mean() > 0.99  # float ties aside


@pytest.mark.parametrize('backend', BACKENDS)
def test_subsampled_training_still_assigns_every_point(backend):
    kmeans = get_kmeans_fn(backend)
    x = torch.randn(1000, 4)
    # 1000 > 5 * 20: trains on 100 points, assigns all 1000.
    centroids, assignment = kmeans(x, 5, 10, 1, 3, 20, 1, False)
    assert assignment.shape == (1000, ) and torch.isfinite(centroids).all()
    again = kmeans(x, 5, 10, 1, 3, 20, 1, False)
    assert torch.equal(centroids, again[0]) and torch.equal(assignment, again[1])


def test_torch_restarts_keep_lowest_objective():
    kmeans = get_kmeans_fn('torch')
    x = torch.randn(500, 3)

    def inertia(num_redo):
        c, a = kmeans(x, 12, 15, num_redo, 0, 1000, 10, False)
        return float(((x - c[a])**2).sum())

    assert inertia(5) <= inertia(1) + 1e-4  # restart 0 of 5 is the single run


def test_nearest_centroid_is_chunked_and_exact():
    x, c = torch.randn(103, 6), torch.randn(9, 6)
    assignment, sq = nearest_centroid(x, c, chunk_elements=20)  # 2 rows per block
    dist = torch.cdist(x, c)**2
    assert torch.equal(assignment, dist.argmin(dim=1))
    torch.testing.assert_close(sq, dist.min(dim=1).values, atol=1e-4, rtol=1e-4)


def test_centroid_sums_paths_agree():
    x = torch.randn(200, 5)
    assignment = torch.randint(0, 7, (200, ))
    assignment[assignment == 3] = 4  # cluster 3 empty
    counts = torch.bincount(assignment, minlength=7)
    by_segments = centroid_sums(x, assignment, counts, sorted_segments=True)
    by_index_add = centroid_sums(x, assignment, counts, sorted_segments=False)
    torch.testing.assert_close(by_segments, by_index_add)
    assert torch.equal(by_segments[3], torch.zeros(5))
    torch.testing.assert_close(by_segments[4], x[assignment == 4].sum(dim=0))


def test_split_empty_clusters():
    centroids = torch.tensor([[9., 9.], [1., 2.], [float('nan'), 0.], [3., 4.], [0., 0.]])
    counts = torch.tensor([0, 10, 0, 3, 0])
    num_split = split_empty_clusters(centroids, counts)
    assert num_split == 3
    assert torch.isfinite(centroids).all()
    assert (counts > 0).all() and int(counts.sum()) == 13
    # Every centroid is a distinct, slightly perturbed copy of a non-empty one.
    assert len({tuple(row.tolist()) for row in centroids}) == 5
    donors = torch.tensor([[1., 2.], [3., 4.]])
    assert torch.cdist(centroids, donors).min(dim=1).values.max() < 0.01


def test_torch_kmeans_repairs_empty_clusters():
    kmeans = get_kmeans_fn('torch')
    # 3 distinct points, 200 copies each, 8 clusters: most clusters must go empty and be split.
    x = torch.tensor([[0., 0.], [5., 5.], [-5., 5.]]).repeat(200, 1)
    centroids, assignment = kmeans(x, 8, 5, 2, 0, 1000, 10, False)
    assert torch.isfinite(centroids).all()
    assert 0 <= int(assignment.min()) and int(assignment.max()) < 8
    # The 3 true points are still found.
    assert torch.cdist(x[:3], centroids).min(dim=1).values.max() < 0.05


def test_chunked_kmeans_equals_unchunked():
    """Distance blocks of a few rows give the same clustering as one block for all."""
    from hirl_mm.clustering.kmeans_torch import kmeans
    x = torch.nn.functional.normalize(torch.randn(600, 8, generator=torch.Generator()
                                                  .manual_seed(1)), dim=1)
    whole = kmeans(x, 12, 8, 2, seed=3, chunk_elements=600 * 12)
    chunked = kmeans(x, 12, 8, 2, seed=3, chunk_elements=12 * 7)  # 7 rows per block
    assert torch.equal(whole[1], chunked[1])
    torch.testing.assert_close(whole[0], chunked[0], rtol=0, atol=0)


def test_bf16_distances_keep_the_objective_within_half_a_percent():
    """bf16 inputs with float32 accumulation (the GPU option), checked on CPU: the
    objective of its assignment stays within 0.5% of the float32 one."""
    from hirl_mm.clustering.kmeans_torch import kmeans, nearest_centroid
    x = torch.nn.functional.normalize(torch.randn(2000, 32, generator=torch.Generator()
                                                  .manual_seed(0)), dim=1)
    objective = {}
    for precision in ('fp32', 'bf16'):
        centroids, assignment = kmeans(x, 20, 10, 1, seed=0, precision=precision)
        objective[precision] = float(((x - centroids[assignment]) ** 2).sum())
        assert torch.equal(assignment, nearest_centroid(x, centroids, precision=precision)[0])
    assert abs(objective['bf16'] / objective['fp32'] - 1) < 0.005
    with pytest.raises(ValueError, match='precision must be one of'):
        kmeans(x, 20, 1, 1, precision='fp16')


def _split_loop(centroids, counts):
    """The host loop the fixed-shape split must match: pair empties (in index order) with
    the largest clusters of >= 2 points, round after round until none is empty."""
    from hirl_mm.clustering.kmeans_torch import SPLIT_EPS
    signs = torch.ones(centroids.shape[1])
    signs[1::2] = -1
    num_split = 0
    while True:
        empty = torch.nonzero(counts == 0).squeeze(1)
        sizes, donors = torch.sort(counts, descending=True, stable=True)
        donors = donors[sizes >= 2]
        num = min(empty.numel(), donors.numel())
        if num == 0:
            return num_split
        empty, donors = empty[:num], donors[:num]
        donor_centroids = centroids[donors]
        centroids[empty] = donor_centroids * (1 + SPLIT_EPS * signs)
        centroids[donors] = donor_centroids * (1 - SPLIT_EPS * signs)
        half = counts[donors] // 2
        counts[empty] = half
        counts[donors] -= half
        num_split += num


@pytest.mark.parametrize('seed', range(6))
def test_split_empty_clusters_matches_the_host_loop(seed):
    """The device-side rounds give exactly what splitting round by round on the host does,
    also when most clusters are empty (one cluster holding everything, seed 0)."""
    generator = torch.Generator().manual_seed(seed)
    k = 37
    counts = torch.randint(0, 6, (k, ), generator=generator)
    counts[torch.rand(k, generator=generator) < 0.5] = 0
    if seed == 0:
        counts = torch.zeros(k, dtype=torch.long)
        counts[5] = 500
    centroids = torch.randn(k, 4, generator=generator)
    expected_c, expected_n = centroids.clone(), counts.clone()
    expected_split = _split_loop(expected_c, expected_n)
    num_split = split_empty_clusters(centroids, counts)
    assert int(num_split) == expected_split
    assert torch.equal(counts, expected_n)
    torch.testing.assert_close(centroids, expected_c, rtol=0, atol=0)
    if int(counts.sum()) >= k:  # with fewer points than clusters some must stay empty
        assert (counts > 0).all()
