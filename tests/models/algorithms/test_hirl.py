"""The HIRL algorithm wrapper, built from configs as users write them."""
import copy

import pytest
import torch
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint_with_prefix
from mmpretrain.models import SimCLR
from mmpretrain.structures import DataSample

from hirl_mm.models.algorithms import HIRLMixin, hirl_class
from hirl_mm.registry import MODELS
from tiny_setup import EMBED_DIM, _method_cfg

BACKBONE = dict(type='ResNet', depth=18, base_channels=8, stem_channels=8)


def _model_cfg(algorithm='SimCLR', **kwargs):
    cfg = dict(type='HIRL', algorithm=algorithm, backbone=BACKBONE, num_clusters=[6, 3],
               semantic_head=dict(type='SemanticPathHead', in_channels=EMBED_DIM,
                                  num_neg_path=8, num_mlp_layer=1),
               **_method_cfg(algorithm))
    cfg.update(kwargs)
    return cfg


def _batch(batch=4, size=32):
    torch.manual_seed(0)
    views = [torch.randn(batch, 3, size, size) for _ in range(2)]
    samples = [DataSample(metainfo=dict(sample_idx=i)) for i in range(batch)]
    return views, samples


def _fill_prototypes(model, num_samples=4):
    protos = model.prototypes
    centroids = [torch.nn.functional.normalize(torch.randn(k, protos.dim), dim=1)
                 for k in protos.num_clusters]
    parents = [torch.arange(protos.num_clusters[0]) % protos.num_clusters[1]]
    im2 = torch.arange(num_samples) % protos.num_clusters[0]
    protos.update(centroids, parents, [im2, parents[0][im2]])


@pytest.mark.parametrize('scope', ['hirl_mm', 'mmpretrain'])
def test_built_from_either_default_scope(scope):
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(_model_cfg())
    assert isinstance(model, SimCLR) and isinstance(model, HIRLMixin)
    assert type(model).__name__ == 'HIRLSimCLR'
    assert type(model) is hirl_class(SimCLR)  # one class per algorithm, cached


def test_unknown_or_unsupported_algorithm():
    with pytest.raises(KeyError, match='not a registered model'):
        MODELS.build(dict(_model_cfg(), algorithm='NoSuchAlgorithm'))
    with pytest.raises(TypeError, match='BaseSelfSupervisor'):
        hirl_class(torch.nn.Linear)


def test_head_levels_must_match_clusters():
    cfg = _model_cfg()
    cfg['semantic_head']['num_levels'] = 3
    with pytest.raises(ValueError, match='num_levels'):
        MODELS.build(cfg)


def test_warmup_loss_is_zero_but_touches_head():
    model = MODELS.build(_model_cfg())
    views, samples = _batch()
    losses = model.loss(views, samples)
    assert float(losses['loss_semantic'].detach()) == 0.0
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.semantic_head.parameters())


@pytest.mark.parametrize('algorithm', ['SimCLR', 'MoCo', 'SwAV', 'BYOL', 'SimSiam'])
def test_semantic_loss_reuses_the_algorithms_backbone_calls(algorithm):
    model = MODELS.build(_model_cfg(algorithm))
    plain = MODELS.build({k: v for k, v in _model_cfg(algorithm).items()
                          if k not in ('num_clusters', 'semantic_head', 'algorithm')}
                         | dict(type=algorithm))
    plain.load_state_dict(model.state_dict(), strict=False)
    _fill_prototypes(model)
    views, samples = _batch()
    if algorithm == 'SwAV':
        views = views + [torch.randn(4, 3, 16, 16) for _ in range(2)]

    def count_calls(m):
        calls = []
        handle = m.backbone.register_forward_hook(lambda *a: calls.append(1))
        torch.manual_seed(1)
        losses = m.loss(copy.deepcopy(views), samples)
        handle.remove()
        return len(calls), losses

    n_hirl, losses = count_calls(model)
    n_plain, _ = count_calls(plain)
    assert n_hirl == n_plain  # no second backbone forward for the embedding
    assert float(losses['loss_semantic'].detach()) > 0
    model.zero_grad()
    losses['loss_semantic'].backward()
    grads = [p.grad for p in model.backbone.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)


def test_iter_wise_assignment_logs_ratio_and_updates_paths():
    model = MODELS.build(_model_cfg(iter_wise_assignment=True))
    _fill_prototypes(model)
    before = model.prototypes.im2cluster[0].clone()
    views, samples = _batch()
    losses = model.loss(views, samples)
    ratio = float(losses['assign_changed_ratio'])
    assert 0.0 <= ratio <= 1.0
    after = model.prototypes.im2cluster[0]
    assert abs(float((before != after).float().mean()) - ratio) < 1e-6
    assert torch.equal(model.prototypes.im2cluster[1],
                       model.prototypes.parents[0][after])


def test_missing_sample_idx_is_a_clear_error():
    model = MODELS.build(_model_cfg())
    _fill_prototypes(model)
    views, _ = _batch()
    with pytest.raises(KeyError, match='sample_idx'):
        model.loss(views, [DataSample() for _ in range(4)])


def test_feature_source():
    moco = MODELS.build(_model_cfg('MoCo'))
    assert moco.clustering_backbone() is moco.encoder_k.module[0]
    online = MODELS.build(_model_cfg('MoCo', feature_source='online'))
    assert online.clustering_backbone() is online.backbone
    with pytest.raises(ValueError, match='no momentum encoder'):
        MODELS.build(_model_cfg('SimCLR', feature_source='momentum'))
    with pytest.raises(ValueError, match='feature_source'):
        MODELS.build(_model_cfg('SimCLR', feature_source='teacher'))


def test_prototypes_are_not_broadcast_by_ddp():
    model = MODELS.build(_model_cfg())
    ignored = set(model._ddp_params_and_buffers_to_ignore)
    assert {'prototypes.centroids_0', 'prototypes.im2cluster_1',
            'prototypes.num_updates'} <= ignored


def test_checkpoint_backbone_loads_with_prefix_exactly(tmp_path):
    """The saved state dict feeds init_cfg=dict(type='Pretrained', prefix='backbone.')."""
    model = MODELS.build(_model_cfg('MoCo'))
    _fill_prototypes(model)
    path = tmp_path / 'hirl.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    backbone_state = _load_checkpoint_with_prefix('backbone.', str(path))
    classifier = MODELS.build(dict(
        type='ImageClassifier', backbone=dict(
            BACKBONE, init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                    prefix='backbone.')),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=4, in_channels=EMBED_DIM)))
    result = classifier.backbone.load_state_dict(backbone_state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    classifier.init_weights()
    for key, value in classifier.backbone.state_dict().items():
        assert torch.equal(value, model.backbone.state_dict()[key]), key


def test_iter_wise_key_view_comes_from_the_momentum_encoder():
    """MoCo shuffles its keys before the momentum encoder; the rows are still found."""
    model = MODELS.build(_model_cfg('MoCo', iter_wise_assignment=True))
    _fill_prototypes(model)
    views, samples = _batch()
    losses = model.loss(views, samples)
    assert 'assign_changed_ratio' in losses
    with torch.no_grad():  # same batch statistics: BatchNorm sees the same rows
        key = model.encoder_k.module[0](views[1])[-1].mean(dim=(2, 3))
    nearest = (torch.nn.functional.normalize(key, dim=1)
               @ model.prototypes.centroids[0].t()).argmax(dim=1)
    assert torch.equal(model.prototypes.im2cluster[0][:4], nearest)


@pytest.mark.parametrize('package', ['mmdet', 'mmseg'])
def test_checkpoint_backbone_loads_into_transfer_backbones(package, tmp_path):
    """mmdet's and mmseg's ResNet take the HIRL backbone with init_cfg prefix='backbone.'."""
    import importlib
    registry = importlib.import_module(f'{package}.registry')
    importlib.import_module(f'{package}.utils').register_all_modules(init_default_scope=False)
    model = MODELS.build(_model_cfg('SimCLR'))
    _fill_prototypes(model)
    path = tmp_path / 'hirl.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    with DefaultScope.overwrite_default_scope(package):
        backbone = registry.MODELS.build(dict(
            type='ResNet', depth=18, base_channels=8, stem_channels=8,
            init_cfg=dict(type='Pretrained', checkpoint=str(path), prefix='backbone.')))
    result = backbone.load_state_dict(_load_checkpoint_with_prefix('backbone.', str(path)),
                                      strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    backbone.init_weights()
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, model.backbone.state_dict()[key]), key
