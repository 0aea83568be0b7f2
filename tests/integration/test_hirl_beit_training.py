"""Real short BEiT (tiny ViT, tiny random DALL-E tokenizer) pre-trainings through mmengine's
Runner on Fashion-MNIST: plain, and under HIRL with a clustering round after a one-epoch
warm-up, on the [CLS] token (the reference's run) and on the projector's [CLS] output (the
reference code's projector option).

The shipped study configs (configs/study/{,hirl-}beit_tiny-vit_fashion-mnist.py) shrunk:
8 images per class (80), batch 16 (5 iterations per epoch), 2 epochs.
"""
import math
from pathlib import Path

import pytest
import torch
from mmengine.runner import Runner

from hirl_mm.models.heads import BEiTV1ProjectedHead
from hirl_mm.models.necks import BEiTTokenProjector
from tiny_setup import logged_scalars, needs_fashion_mnist, shrunk_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures('single_thread'),
              needs_fashion_mnist()]

CONFIGS = {'plain': 'configs/study/beit_tiny-vit_fashion-mnist.py',
           'hirl': 'configs/study/hirl-beit_tiny-vit_fashion-mnist.py'}
PER_CLASS, BATCH, EPOCHS = 8, 16, 2
ITERS_PER_EPOCH = 10 * PER_CLASS // BATCH


def _train(name: str, work_dir: Path, projector: bool = False) -> Runner:
    cfg = shrunk_config(CONFIGS[name], work_dir, num_per_class=PER_CLASS,
                        batch_size=BATCH, max_epochs=EPOCHS, warmup_epochs=1)
    if projector:
        cfg.merge_from_dict(dict(model=cfg.beit_projector))
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner




def test_plain_beit_trains(tmp_path):
    runner = _train('plain', tmp_path)
    assert type(runner.model).__name__ == 'BEiT' and not runner.model.with_neck
    losses = logged_scalars(tmp_path, 'loss')
    assert len(losses) == EPOCHS * ITERS_PER_EPOCH
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]  # the masked tokens' codes are learnt (smoothed log)
    assert not logged_scalars(tmp_path, 'loss_semantic')
    state = torch.load(tmp_path / f'epoch_{EPOCHS}.pth', map_location='cpu')['state_dict']
    assert any(k.startswith('backbone.') for k in state)
    assert any(k.startswith('target_generator.') for k in state)


@pytest.mark.parametrize('projector', [False, True], ids=['cls', 'projector'])
def test_hirl_beit_trains_with_a_clustering_round(projector, tmp_path):
    runner = _train('hirl', tmp_path, projector)
    model = runner.model
    assert type(model).__name__ == 'HIRLBEiT' and model.with_neck == projector
    assert isinstance(model.neck, BEiTTokenProjector) == projector
    assert isinstance(model.head, BEiTV1ProjectedHead) == projector
    protos = model.prototypes
    assert protos.ready and int(protos.num_updates) == 1 and protos.num_samples == 80
    assert protos.embedding == ('neck' if projector else 'backbone')
    assert protos.centroids[0].shape == (12, 64)
    losses = logged_scalars(tmp_path, 'loss')
    assert len(losses) == EPOCHS * ITERS_PER_EPOCH
    assert all(math.isfinite(v) for v in losses)
    semantic = logged_scalars(tmp_path, 'loss_semantic')
    assert len(semantic) == EPOCHS * ITERS_PER_EPOCH
    assert all(v == 0 for v in semantic[:ITERS_PER_EPOCH])  # warm-up epoch
    assert all(v > 0 and math.isfinite(v) for v in semantic[ITERS_PER_EPOCH:])
    state = torch.load(tmp_path / f'epoch_{EPOCHS}.pth', map_location='cpu')['state_dict']
    assert any(k.startswith('prototypes.') for k in state)
    assert any(k.startswith('neck.mlp.') for k in state) == projector
