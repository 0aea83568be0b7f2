"""Real short MoCo v3 (tiny ViT) pre-trainings through mmengine's Runner on Fashion-MNIST:
plain, and under HIRL with clustering rounds after a one-epoch warm-up.

The shipped study configs (configs/study/{,hirl-}mocov3_tiny-vit_fashion-mnist.py) shrunk:
8 images per class (80), batch 16 (5 iterations per epoch), 3 epochs.
"""
import math
from pathlib import Path

import pytest
import torch
from mmengine.runner import Runner

from tiny_setup import logged_scalars, needs_fashion_mnist, shrunk_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('single_thread'),
              needs_fashion_mnist()]

CONFIGS = {'plain': 'configs/study/mocov3_tiny-vit_fashion-mnist.py',
           'hirl': 'configs/study/hirl-mocov3_tiny-vit_fashion-mnist.py'}
PER_CLASS, BATCH, EPOCHS = 8, 16, 3
ITERS_PER_EPOCH = 10 * PER_CLASS // BATCH


def _train(name: str, work_dir: Path) -> Runner:
    cfg = shrunk_config(CONFIGS[name], work_dir, num_per_class=PER_CLASS,
                        batch_size=BATCH, max_epochs=EPOCHS, warmup_epochs=1)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner




def test_plain_mocov3_trains(tmp_path):
    runner = _train('plain', tmp_path)
    assert type(runner.model).__name__ == 'MoCoV3'
    losses = logged_scalars(tmp_path, 'loss')
    assert len(losses) == EPOCHS * ITERS_PER_EPOCH
    assert all(math.isfinite(v) for v in losses)
    assert not logged_scalars(tmp_path, 'loss_semantic')
    state = torch.load(tmp_path / f'epoch_{EPOCHS}.pth', map_location='cpu')['state_dict']
    assert any(k.startswith('backbone.') for k in state)
    assert any(k.startswith('momentum_encoder.module.0.') for k in state)


def test_hirl_mocov3_trains_with_clustering_rounds(tmp_path):
    runner = _train('hirl', tmp_path)
    model = runner.model
    assert type(model).__name__ == 'HIRLMoCoV3'

    losses = logged_scalars(tmp_path, 'loss')
    semantic = logged_scalars(tmp_path, 'loss_semantic')
    assert len(losses) == len(semantic) == EPOCHS * ITERS_PER_EPOCH
    assert all(math.isfinite(v) for v in losses + semantic)
    assert all(v == 0 for v in semantic[:ITERS_PER_EPOCH])  # warm-up: MoCo v3 only
    assert all(v > 0 for v in semantic[ITERS_PER_EPOCH:])

    protos = model.prototypes
    assert protos.ready and int(protos.num_updates) == EPOCHS - 1  # before epochs 1, 2
    assert protos.embedding == 'neck'
    assert protos.num_samples == 10 * PER_CLASS
    num_clusters = [12, 6, 3]  # shrunk_config's
    assert protos.num_clusters == num_clusters
    assert [tuple(c.shape) for c in protos.centroids] == [(k, 64) for k in num_clusters]
    for centroids in protos.centroids:
        torch.testing.assert_close(centroids.norm(dim=1), torch.ones(len(centroids)))
    for level, (assign, k) in enumerate(zip(protos.im2cluster, num_clusters)):
        assert int(assign.min()) >= 0 and int(assign.max()) < k
        if level:
            assert torch.equal(assign, protos.parents[level - 1][protos.im2cluster[level - 1]])
    assert logged_scalars(tmp_path, 'hirl/level0_max_size')  # per-round cluster statistics

    state = torch.load(tmp_path / f'epoch_{EPOCHS}.pth', map_location='cpu')['state_dict']
    assert torch.equal(state['prototypes.im2cluster_0'], protos.im2cluster[0])
    assert any(k.startswith('semantic_head.') for k in state)
