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
