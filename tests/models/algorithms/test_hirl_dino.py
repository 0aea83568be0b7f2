"""HIRL on DINO / iBOT: the reference's embedding (the head's bottleneck on the first
global crop's [CLS]), no extra forward, clustering in the teacher's space."""
import copy

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmpretrain.structures import DataSample

import hirl_mm  # noqa: F401
from hirl_mm.registry import MODELS

CONFIGS = {name: f'configs/study/{name.lower()}_tiny-vit_fashion-mnist.py'
           for name in ('DINO', 'iBOT')}
BATCH, LOCAL = 3, 2

pytestmark = pytest.mark.usefixtures('single_thread')


def _model(name: str, hirl: bool = True, embedding: str = 'neck'):
    cfg = dict(Config.fromfile(CONFIGS[name]).model)
    cfg['backbone'] = dict(cfg['backbone'], drop_path_rate=0.)  # deterministic student
    # Nor BN in the head, which mixes the rows of a batch: exact per-crop comparisons.
    cfg['neck'] = dict(cfg['neck'], use_bn=False)
    if hirl:
        cfg.update(type='HIRL', algorithm=name, num_clusters=[6, 3], embedding=embedding,
                   semantic_head=dict(type='SemanticPathHead', num_neg_path=4,
                                      num_mlp_layer=2))
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    model.train()
    MessageHub.get_current_instance().update_info('max_iters', 10)
    return model


def _batch():
    torch.manual_seed(1)
    views = [torch.randn(BATCH, 3, 28, 28) for _ in range(2)] + \
        [torch.randn(BATCH, 3, 12, 12) for _ in range(LOCAL)]
    samples = []
    for i in range(BATCH):
        sample = DataSample()
        mask = torch.zeros(2, 7, 7, dtype=torch.bool)
        mask[0, i, :3] = True
        mask[1, :2, i] = True
        sample.set_field(mask, 'mask', field_type='metainfo')
        sample.set_field(i, 'sample_idx', field_type='metainfo')
        samples.append(sample)
    return views, samples


def _semantic_input(model, views, samples):
    seen = []
    original = model.semantic_head.loss
    model.semantic_head.loss = lambda embedding, *a, **k: (seen.append(embedding),
                                                           original(embedding, *a, **k))[1]
    losses = model.loss(views, samples)
    return seen[0], losses


@pytest.mark.parametrize('name', ['DINO', 'iBOT'])
def test_semantic_loss_reads_the_bottleneck_of_the_first_global_crop(name):
    model = _model(name)
    assert model.semantic_head.in_channels == 64  # the bottleneck, not the 512 scores
    views, samples = _batch()
    embedding, losses = _semantic_input(model, views, samples)
    assert 'loss_semantic' in losses
    kwargs = {}
    if name == 'iBOT':  # the student's global crops are masked
        kwargs['mask'] = torch.stack([s.mask[0] for s in samples])
    with torch.no_grad():
        direct = model.neck.mlp(model.backbone(views[0], **kwargs)[0].reshape(
            BATCH, -1, 64)[:, 0])
    torch.testing.assert_close(embedding.detach(), direct)
    embedding.sum().backward()  # the graph reaches the neck and the backbone
    assert model.neck.mlp[0].weight.grad is not None
    assert model.backbone.cls_token.grad is not None


@pytest.mark.parametrize('name', ['DINO', 'iBOT'])
def test_no_extra_forward_of_backbone_or_neck(name):
    counts = {}
    for hirl in (False, True):
        model = _model(name, hirl=hirl)
        calls = []
        for module in (model.backbone, model.neck, model.teacher.module[0]):
            module.register_forward_hook(lambda m, i, o: calls.append(m))
        model.loss(*_batch())
        counts[hirl] = [sum(c is m for c in calls)
                        for m in (model.backbone, model.neck, model.teacher.module[0])]
    assert counts[True] == counts[False]


@pytest.mark.parametrize('name', ['DINO', 'iBOT'])
def test_clustering_embeds_with_the_teacher(name):
    model = _model(name)
    encoder = model.clustering_encoder()
    assert encoder.backbone is model.teacher.module[0]
    assert encoder.neck is model.teacher.module[1]
    images = torch.randn(4, 3, 28, 28)
    model.eval()
    with torch.no_grad():
        tokens = model.teacher.module[0](images)[0]
        cls = tokens[:, 0] if tokens.dim() == 3 else tokens
        expected = model.teacher.module[1].mlp(cls)
    torch.testing.assert_close(model.extract_clustering_embedding(images), expected)


def test_backbone_embedding_of_a_vit_is_its_cls_token():
    model = _model('DINO', embedding='backbone')
    assert model.semantic_head.in_channels == 64  # the ViT's width
    views, samples = _batch()
    embedding, _ = _semantic_input(model, views, samples)
    with torch.no_grad():
        direct = model.backbone(views[0])[0]
    torch.testing.assert_close(embedding.detach(), direct)


def _raw_tokens(backbone, images, **kwargs):
    """All final-norm tokens of a copy of ``backbone`` built to output them."""
    raw = copy.deepcopy(backbone)
    raw.out_type = 'raw'
    return raw(images, **kwargs)[0]


@pytest.mark.parametrize('name', ['DINO', 'iBOT'])
def test_patch_mean_embedding_is_the_mean_final_norm_patch_token(name):
    model = _model(name, embedding='patch_mean')
    assert model.semantic_head.in_channels == 64
    views, samples = _batch()
    embedding, _ = _semantic_input(model, views, samples)
    kwargs = {'mask': torch.stack([s.mask[0] for s in samples])} if name == 'iBOT' else {}
    with torch.no_grad():
        direct = _raw_tokens(model.backbone, views[0], **kwargs)[:, 1:].mean(1)
    torch.testing.assert_close(embedding.detach(), direct)
    # Clustering: the teacher's mean patch token of unmasked images.
    images = torch.randn(4, 3, 28, 28)
    model.eval()
    with torch.no_grad():
        expected = _raw_tokens(model.teacher.module[0], images)[:, 1:].mean(1)
    torch.testing.assert_close(model.extract_clustering_embedding(images), expected)


def test_patch_mean_needs_a_vit():
    from tiny_setup import _method_cfg
    cfg = dict(type='HIRL', algorithm='SimCLR', num_clusters=[6, 3], embedding='patch_mean',
               semantic_head=dict(type='SemanticPathHead', num_neg_path=4),
               backbone=dict(type='ResNet', depth=18, base_channels=8), **_method_cfg('SimCLR'))
    with pytest.raises(ValueError, match='embedding="patch_mean" needs a ViT'):
        MODELS.build(cfg)
