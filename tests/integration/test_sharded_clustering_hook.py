"""The clustering hook's sharded path through mmengine's Runner (one process, CPU).

``distributed=True`` forces the sharded back end with one process; a half-precision bank
and warm starts ride along, and a resumed run warm starts from the prototypes it loaded.
(The 2-process runs of tests/integration/test_distributed.py take the sharded path by
default.)
"""
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from hirl_mm.clustering import HierarchicalKMeans
from tiny_setup import hirl_config

pytestmark = pytest.mark.slow


def _config(image_folder, work_dir, max_epochs: int) -> dict:
    cfg = hirl_config('SimCLR', image_folder, work_dir, max_epochs=max_epochs,
                      warmup_epochs=1)
    hook = cfg['custom_hooks'][0]
    hook['bank_dtype'] = 'float16'
    hook['clusterer'].update(distributed=True, warm_start=True, warm_start_num_redo=1)
    return cfg


def test_sharded_hook_with_half_bank_and_warm_start_after_resume(image_folder, tmp_path,
                                                                   monkeypatch):
    calls = []
    original = HierarchicalKMeans.cluster_shard

    def spy(self, features, sample_idx, num_samples, previous=None):
        calls.append(dict(dtype=features.dtype, rows=features.shape[0],
                          idx=sample_idx.clone(), num_samples=num_samples,
                          previous=None if previous is None else
                          [c.clone() for c in previous.centroids]))
        return original(self, features, sample_idx, num_samples, previous)

    monkeypatch.setattr(HierarchicalKMeans, 'cluster_shard', spy)
    first = Runner.from_cfg(Config(_config(image_folder, tmp_path, max_epochs=2)))
    first.train()
    saved = {k: v.clone() for k, v in first.model.prototypes.state_dict().items()}
    del first
    assert len(calls) == 1 and calls[0]['previous'] is None  # nothing to warm start from
    assert calls[0]['dtype'] == torch.float16 and calls[0]['num_samples'] == 40
    assert sorted(calls[0]['idx'].tolist()) == list(range(40))

    cfg = _config(image_folder, tmp_path, max_epochs=3)
    cfg['resume'] = True
    cfg['load_from'] = str(tmp_path / 'epoch_2.pth')
    resumed = Runner.from_cfg(Config(cfg))
    resumed.train()
    assert len(calls) == 2
    # The resumed round warm started from exactly the prototypes the first run stored.
    for level, centroids in enumerate(calls[1]['previous']):
        assert torch.equal(centroids, saved[f'centroids_{level}'])
    protos = resumed.model.prototypes
    assert int(protos.num_updates) == 2 and protos.num_samples == 40
    for level, (assign, k) in enumerate(zip(protos.im2cluster, protos.num_clusters)):
        assert int(assign.min()) >= 0 and int(assign.max()) < k
        if level:
            assert torch.equal(assign, protos.parents[level - 1][protos.im2cluster[level - 1]])
    for centroids in protos.centroids:
        assert centroids.dtype == torch.float32
        torch.testing.assert_close(centroids.norm(dim=1), torch.ones(len(centroids)))


def test_bad_bank_dtype_is_refused():
    from hirl_mm.engine.hooks import HierarchicalClusteringHook
    with pytest.raises(ValueError, match='bank_dtype'):
        HierarchicalClusteringHook(bank_dtype='float64')
