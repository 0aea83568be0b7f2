"""The sharded k-means back end on 2 and 3 gloo processes (uneven shards, CPU).

One ``torch.distributed.run`` launch per world size runs every case of
``sharded_kmeans_worker.py``; the tests compare what the ranks saved with each other and
with the single-process torch back end from the same initialisation.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hirl_mm.clustering import HierarchicalKMeans
from hirl_mm.clustering.kmeans_distributed import sharded_kmeans
from hirl_mm.clustering.kmeans_torch import kmeans as torch_kmeans

sys.path.insert(0, str(Path(__file__).parent))
import sharded_kmeans_worker as worker  # noqa: E402

pytestmark = [pytest.mark.dist]
REPO = Path(__file__).parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='module', params=[2, 3], ids=['2-ranks', '3-ranks'])
def ranks(request, tmp_path_factory):
    """What every rank saved, for one world size."""
    world = request.param
    out = tmp_path_factory.mktemp(f'sharded{world}')
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]))
    cmd = [sys.executable, '-m', 'torch.distributed.run', f'--nproc_per_node={world}',
           f'--master_port={_free_port()}', str(Path(worker.__file__)), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [torch.load(out / f'rank{r}.pth', weights_only=False) for r in range(world)]


def _tensors(result):
    return [*result.centroids, *result.parents, *result.im2cluster]


def _assert_identical(results):
    for other in results[1:]:
        for a, b in zip(_tensors(results[0]), _tensors(other)):
            assert torch.equal(a, b)


def test_shards_are_uneven_and_cover_every_sample(ranks):
    rows = [r['shard_rows'] for r in ranks]
    assert sum(rows) == worker.N and len(set(rows)) == 2  # N % world != 0
    assert sorted(torch.cat([r['idx'] for r in ranks]).tolist()) == list(range(worker.N))


@pytest.mark.parametrize('case', ['result', 'subsampled', 'half', 'round2'])
def test_every_rank_holds_identical_centroids_parents_assignments(ranks, case):
    _assert_identical([r[case] for r in ranks])
    assert ranks[0][case].im2cluster[0].shape == (worker.N, )


@pytest.mark.parametrize('case,mppc', [('result', 1000), ('subsampled', 10)])
def test_equals_single_process_torch_backend(ranks, case, mppc):
    full = worker.data('random')
    single = HierarchicalKMeans(worker.KS, backend='torch', num_iters=8, num_redo=3, seed=3,
                                max_points_per_centroid=mppc)(full)
    sharded = ranks[0][case]
    for level in range(len(worker.KS)):
        # Sums are all-reduced in float64 (single process: float32): rounding differs.
        torch.testing.assert_close(sharded.centroids[level], single.centroids[level],
                                   rtol=0, atol=1e-5)
        assert torch.equal(sharded.im2cluster[level], single.im2cluster[level])
    for a, b in zip(sharded.parents, single.parents):
        assert torch.equal(a, b)


def test_no_rank_allocates_more_than_its_shard(ranks):
    width = max(worker.DIM, worker.KS[0])  # a row of features or of distances
    for r in ranks:
        bound = r['shard_rows'] * width
        assert bound < worker.N * worker.DIM  # a gathered bank would break the bound
        assert 0 < r['max_float_numel'] <= bound


def test_restarts_keep_the_lowest_global_objective(ranks):
    runs = ranks[0]['restarts']  # num_redo = 1, 2, 3 with the same draws
    objectives = runs[2].objectives
    assert runs[0].objectives == objectives[:1] and runs[1].objectives == objectives[:2]
    assert len(set(objectives)) == 3  # the restarts really differ
    for j, run in enumerate(runs):
        best = min(range(j + 1), key=lambda i: (objectives[i], i))
        assert torch.equal(run.centroids, runs[best].centroids)
    for r in ranks[1:]:  # the global objective (and choice) is the same on every rank
        assert [x.objectives for x in r['restarts']] == [x.objectives for x in runs]
        assert torch.equal(r['restarts'][2].centroids, runs[2].centroids)


def test_empty_clusters_are_reseeded(ranks):
    dup = worker.data('duplicates')
    results = [r['duplicates'] for r in ranks]
    assert results[0].num_split > 0  # random inits on repeated rows leave clusters empty
    sizes = torch.zeros(6, dtype=torch.long)
    for r, res in zip(ranks, results):
        assert torch.equal(res.centroids, results[0].centroids)
        sizes += torch.bincount(res.assignment, minlength=6)
    assert bool((sizes > 0).all())  # re-seeded, not left empty
    assert sizes.sum() == dup.shape[0]
    # No comparison with the single-process back end here: with exact duplicates a split
    # pair ties to the last ulp, and float32 vs float64 sums break such ties differently.


def test_resumed_warm_start_continues_with_the_same_prototypes(ranks):
    for r in ranks:
        for a, b in zip(_tensors(r['round2']), _tensors(r['resumed_round2'])):
            assert torch.equal(a, b)
    # The warm round started from round 1: it stays close to it.
    assert (ranks[0]['round2'].im2cluster[0] == ranks[0]['result'].im2cluster[0]).float() \
        .mean() > 0.9


def test_half_precision_shard_agrees_with_float32(ranks):
    half, full = ranks[0]['half'], ranks[0]['result']
    assert half.centroids[0].dtype == torch.float32
    assert (half.im2cluster[0] == full.im2cluster[0]).float().mean() > 0.95


def test_single_process_sharded_equals_torch_backend():
    """Without a process group the sharded back end is a chunked single-process k-means."""
    x = worker.data('random')
    order = torch.randperm(worker.N, generator=torch.Generator().manual_seed(2))
    ref = torch_kmeans(x, 12, 6, 2, 1, 20)
    res = sharded_kmeans(x[order], order, worker.N, 12, 6, 2, 1, 20, chunk_elements=50)
    torch.testing.assert_close(res.centroids, ref[0], rtol=0, atol=1e-5)
    assert torch.equal(res.assignment, ref[1][order])


def test_slots_of_finds_local_positions_in_the_wanted_ones():
    from hirl_mm.clustering.kmeans_distributed import slots_of
    slots = slots_of(torch.tensor([5, 2, 9, 7, 3]), torch.tensor([9, 5, 3]))
    assert slots.tolist() == [1, -1, 0, -1, 2]
    assert slots_of(torch.tensor([1, 2]), torch.tensor([], dtype=torch.long)).tolist() == [-1, -1]
