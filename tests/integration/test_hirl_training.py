"""Real short HIRL pre-trainings through mmengine's Runner, with clustering rounds."""

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from tiny_setup import hirl_config, logged_scalars

pytestmark = pytest.mark.slow


def _train(cfg: dict) -> Runner:
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    return runner




@pytest.mark.parametrize('algorithm,iter_wise', [('SimCLR', False), ('MoCo', False),
                                                 ('SwAV', True), ('BYOL', False),
                                                 ('SimSiam', False)])
def test_short_pretraining_with_clustering(algorithm, iter_wise, image_folder, tmp_path):
    runner = _train(hirl_config(algorithm, image_folder, tmp_path, max_epochs=3,
                                warmup_epochs=1, iter_wise_assignment=iter_wise))
    protos = runner.model.prototypes
    assert int(protos.num_updates) == 2  # before epochs 1 and 2 (0-based)
    assert protos.num_samples == 40
    for level, (assign, k) in enumerate(zip(protos.im2cluster, protos.num_clusters)):
        assert int(assign.min()) >= 0 and int(assign.max()) < k
        if level:
            assert torch.equal(assign, protos.parents[level - 1][protos.im2cluster[level - 1]])
    for centroids in protos.centroids:
        torch.testing.assert_close(centroids.norm(dim=1), torch.ones(len(centroids)))

    semantic = logged_scalars(tmp_path, 'loss_semantic')
    iters_per_epoch = 5
    assert all(v == 0 for v in semantic[:iters_per_epoch])  # warm-up: SSL loss only
    assert all(v > 0 for v in semantic[iters_per_epoch:])
    assert logged_scalars(tmp_path, 'hirl/level0_max_size')  # per-round cluster statistics
    if iter_wise:
        ratios = logged_scalars(tmp_path, 'assign_changed_ratio')
        assert ratios and all(0 <= r <= 1 for r in ratios)

    ckpt = torch.load(tmp_path / 'epoch_3.pth', map_location='cpu')  # weights_only default
    assert any(k.startswith('backbone.') for k in ckpt['state_dict'])
    assert torch.equal(ckpt['state_dict']['prototypes.im2cluster_0'], protos.im2cluster[0])


def test_resume_keeps_prototypes_and_training_goes_on(image_folder, tmp_path):
    # Clustering before epoch 1 only (interval 2); stop after epoch 2.
    first = _train(hirl_config('SimCLR', image_folder, tmp_path, max_epochs=2,
                               warmup_epochs=1))
    saved = {k: v.clone() for k, v in first.model.prototypes.state_dict().items()}
    assert int(saved['num_updates']) == 1
    del first

    cfg = hirl_config('SimCLR', image_folder, tmp_path, max_epochs=3, warmup_epochs=1)
    cfg['custom_hooks'][0]['interval'] = 2  # epoch 2 is not a clustering epoch
    cfg['resume'] = True
    cfg['load_from'] = str(tmp_path / 'epoch_2.pth')
    resumed = Runner.from_cfg(Config(cfg))
    resumed.train()
    assert resumed.epoch == 3 and resumed.iter == 15
    for key, value in resumed.model.prototypes.state_dict().items():
        assert torch.equal(value, saved[key]), key
    semantic = logged_scalars(tmp_path, 'loss_semantic')
    assert semantic[-1] > 0  # the resumed epoch trained with the restored prototypes
