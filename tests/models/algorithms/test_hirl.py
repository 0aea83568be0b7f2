"""The HIRL algorithm wrapper, built from configs as users write them."""
import copy

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.registry import DefaultScope
from mmengine.runner.checkpoint import _load_checkpoint_with_prefix
from mmpretrain.models import SimCLR
from mmpretrain.structures import DataSample

from hirl_mm.models.algorithms import HIRLMixin, hirl_class
from hirl_mm.registry import MODELS
from tiny_setup import CNN_ALGORITHMS, EMBED_DIM, NECK_DIM, _method_cfg

BACKBONE = dict(type='ResNet', depth=18, base_channels=8, stem_channels=8)


@pytest.fixture(autouse=True)
def _max_iters():
    """BYOL's cosine EMA reads the run's length from the message hub, as under a Runner."""
    MessageHub.get_current_instance().update_info('max_iters', 100)


def _model_cfg(algorithm='SimCLR', **kwargs):
    cfg = dict(type='HIRL', algorithm=algorithm, backbone=BACKBONE, num_clusters=[6, 3],
               semantic_head=dict(type='SemanticPathHead', num_neg_path=8, num_mlp_layer=2),
               **_method_cfg(algorithm))
    cfg.update(kwargs)
    return cfg


def _batch(batch=4, size=32, algorithm='SimCLR'):
    torch.manual_seed(0)
    views = [torch.randn(batch, 3, size, size) for _ in range(2)]
    if algorithm == 'SwAV':  # two local crops at a second resolution
        views += [torch.randn(batch, 3, size // 2, size // 2) for _ in range(2)]
    samples = [DataSample(metainfo=dict(sample_idx=i)) for i in range(batch)]
    return views, samples


def _plain(algorithm, hirl_model):
    """The same algorithm without HIRL, with the HIRL model's weights."""
    cfg = {k: v for k, v in _model_cfg(algorithm).items()
           if k not in ('num_clusters', 'semantic_head', 'algorithm')}
    plain = MODELS.build(dict(cfg, type=algorithm))
    plain.load_state_dict(hirl_model.state_dict(), strict=False)
    return plain


def _count_calls(model, views, samples, names=('backbone', 'neck')):
    """Forward calls of the named submodules during one ``loss``, and the losses."""
    counts = dict.fromkeys(names, 0)
    handles = [getattr(model, name).register_forward_hook(
        lambda *_, name=name: counts.__setitem__(name, counts[name] + 1)) for name in names]
    torch.manual_seed(1)
    losses = model.loss(copy.deepcopy(views), samples)
    for handle in handles:
        handle.remove()
    return counts, losses


def _head_input(model, views, samples):
    """The embedding the semantic head received during one ``loss``."""
    seen = []
    handle = model.semantic_head.register_forward_hook(
        lambda _m, args, _out: seen.append(args[0].detach().clone()))
    model.loss(copy.deepcopy(views), samples)
    handle.remove()
    assert len(seen) == 1
    return seen[0]


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


@pytest.mark.parametrize('algorithm', CNN_ALGORITHMS)
def test_neck_embedding_is_the_first_views_projection(algorithm):
    """embedding='neck' reads the algorithm's own neck output for the first view."""
    model = MODELS.build(_model_cfg(algorithm))
    assert model.semantic_head.in_channels == NECK_DIM == model.prototypes.dim
    _fill_prototypes(model)
    model.eval()  # batch norm on running statistics: rows do not depend on batch layout
    views, samples = _batch(algorithm=algorithm)
    embedding = _head_input(model, views, samples)
    with torch.no_grad():
        features = model.backbone(views[0])
        direct = model.neck([features] if algorithm == 'SwAV' else features)
    direct = direct[0] if isinstance(direct, tuple) else direct
    torch.testing.assert_close(embedding, direct)


@pytest.mark.parametrize('algorithm', CNN_ALGORITHMS)
def test_neck_embedding_adds_no_forward_and_trains_the_neck(algorithm):
    model = MODELS.build(_model_cfg(algorithm))
    _fill_prototypes(model)
    views, samples = _batch(algorithm=algorithm)
    hirl_counts, losses = _count_calls(model, views, samples)
    plain_counts, _ = _count_calls(_plain(algorithm, model), views, samples)
    assert hirl_counts == plain_counts  # no second backbone or neck forward
    assert hirl_counts['neck'] >= 1
    assert float(losses['loss_semantic'].detach()) > 0
    model.zero_grad()
    losses['loss_semantic'].backward()
    for name in ('neck', 'backbone'):
        grads = [p.grad for p in getattr(model, name).parameters() if p.grad is not None]
        assert grads and any(float(g.abs().sum()) > 0 for g in grads), name


@pytest.mark.parametrize('algorithm', ['SimCLR', 'MoCo', 'SwAV'])
def test_backbone_embedding_option(algorithm):
    """embedding='backbone' keeps the pooled backbone of the first view (the old variant)."""
    model = MODELS.build(_model_cfg(algorithm, embedding='backbone'))
    assert model.semantic_head.in_channels == EMBED_DIM == model.prototypes.dim
    assert model.prototypes.embedding == 'backbone'
    _fill_prototypes(model)
    model.eval()
    views, samples = _batch(algorithm=algorithm)
    embedding = _head_input(model, views, samples)
    with torch.no_grad():
        direct = model.backbone(views[0])[-1].mean(dim=(2, 3))
    torch.testing.assert_close(embedding, direct)
    hirl_counts, _ = _count_calls(model, views, samples, names=('backbone', ))
    plain_counts, _ = _count_calls(_plain(algorithm, model), views, samples,
                                   names=('backbone', ))
    assert hirl_counts == plain_counts


@pytest.mark.parametrize('algorithm', ['MoCo', 'BYOL'])
def test_momentum_methods_cluster_the_momentum_necks_output(algorithm):
    model = MODELS.build(_model_cfg(algorithm))
    ema = model.encoder_k if algorithm == 'MoCo' else model.target_net
    momentum = ema.module  # Sequential(backbone, neck), an EMA copy
    assert model.clustering_encoder().neck is momentum[1]
    with torch.no_grad():  # make the EMA copy differ from the online encoder
        for param in momentum.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = momentum(x)[0]
        online = model.neck(model.backbone(x))[0]
    got = model.extract_clustering_embedding(x)
    assert got.shape == (3, NECK_DIM)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, online)


@pytest.mark.parametrize('algorithm', ['SimCLR', 'SwAV', 'SimSiam', 'BarlowTwins'])
def test_online_methods_cluster_the_online_necks_output(algorithm):
    """Without a momentum encoder the online backbone + neck is clustered (SwAV's neck
    takes a list of backbone outputs: the layout is found, not hard-coded)."""
    model = MODELS.build(_model_cfg(algorithm))
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        features = model.backbone(x)
        expected = model.neck([features] if algorithm == 'SwAV' else features)
    expected = expected[0] if isinstance(expected, tuple) else expected
    torch.testing.assert_close(model.extract_clustering_embedding(x), expected)


def test_mismatched_in_channels_fails_at_build_with_the_right_width():
    cfg = _model_cfg('MoCo')
    cfg['semantic_head']['in_channels'] = EMBED_DIM  # the backbone's width, not the neck's
    with pytest.raises(ValueError, match=f'set in_channels={NECK_DIM}'):
        MODELS.build(cfg)
    cfg = _model_cfg('MoCo', embedding='backbone')
    cfg['semantic_head']['in_channels'] = NECK_DIM
    with pytest.raises(ValueError, match=f'set in_channels={EMBED_DIM}'):
        MODELS.build(cfg)
    cfg = _model_cfg('MoCo')
    cfg['semantic_head']['in_channels'] = NECK_DIM  # right: accepted
    assert MODELS.build(cfg).semantic_head.in_channels == NECK_DIM


def test_semantic_heads_are_the_reference_mlp():
    model = MODELS.build(_model_cfg('MoCo'))
    for mlp in model.semantic_head.projectors:
        linears = [m for m in mlp if isinstance(m, torch.nn.Linear)]
        assert len(linears) == 2  # num_mlp_layer=2
        assert linears[0].bias is None and linears[1].bias is not None


def test_unknown_embedding_or_missing_neck():
    with pytest.raises(ValueError, match="embedding='pooled'"):
        MODELS.build(_model_cfg(embedding='pooled'))
    cfg = _model_cfg('SimCLR')
    cfg.pop('neck')
    with pytest.raises((ValueError, TypeError)):
        MODELS.build(cfg)


def test_an_algorithm_whose_neck_layout_cannot_be_followed_fails_clearly():
    """A neck fed with something else than the backbone's output (here a re-packed
    copy) cannot be followed: the error names the option to use instead."""
    from mmpretrain.models import SimCLR

    class RepackingSimCLR(SimCLR):
        def loss(self, inputs, data_samples, **kwargs):
            x = self.backbone(torch.cat(inputs))
            z = self.neck(tuple(t.clone() for t in x))[0]
            return dict(loss=z.pow(2).mean())

    model = hirl_class(RepackingSimCLR)(**{k: v for k, v in _model_cfg().items()
                                            if k not in ('type', 'algorithm')})
    views, samples = _batch()
    with pytest.raises(RuntimeError, match='embedding="backbone"'):
        model.loss(views, samples)


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
    assert moco.clustering_encoder().backbone is moco.encoder_k.module[0]
    online = MODELS.build(_model_cfg('MoCo', feature_source='online'))
    assert online.clustering_encoder().backbone is online.backbone
    assert online.clustering_encoder().neck is online.neck
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
        key = model.encoder_k.module(views[1])[0]  # the key encoder's neck output
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
