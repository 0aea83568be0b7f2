"""HIRL around mmpretrain's MoCo v3 (ViT): the embedding, the forwards, the clustering
encoder, and the shipped configs (the ViT-B/16 one built on the meta device)."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.registry import init_default_scope
from mmpretrain.models import MoCoV3
from mmpretrain.structures import DataSample

from hirl_mm.models.algorithms import HIRLMixin
from hirl_mm.registry import HOOKS, MODELS
from test_hirl import _fill_prototypes, _head_input
from tiny_setup import HIRL_MODEL_KEYS, without_hirl_head_group

pytestmark = pytest.mark.usefixtures('single_thread')

CONFIGS = Path(__file__).parents[3] / 'configs'
EMBED, PROJ = 32, 16  # the toy ViT's width and its projector's output width
BATCH, SIZE = 4, 16


@pytest.fixture(autouse=True)
def _max_iters():
    """MoCo v3's cosine EMA reads the run's length from the message hub, as under a Runner."""
    MessageHub.get_current_instance().update_info('max_iters', 100)


def _mocov3_cfg(**hirl) -> dict:
    """A toy MoCo v3 (2-block ViT, 16-pixel input), under HIRL when ``hirl`` is given."""
    bn = dict(type='BN1d')
    mlp = dict(type='NonLinearNeck', hid_channels=32, with_bias=False, with_last_bn=True,
               with_last_bn_affine=False, with_last_bias=False, with_avg_pool=False,
               norm_cfg=bn)
    cfg = dict(
        type='MoCoV3', base_momentum=0.01,
        backbone=dict(type='MoCoV3ViT', arch=dict(embed_dims=EMBED, num_layers=2,
                                                  num_heads=2, feedforward_channels=64),
                      img_size=SIZE, patch_size=4, stop_grad_conv1=True),
        neck=dict(mlp, in_channels=EMBED, out_channels=PROJ, num_layers=3),
        head=dict(type='MoCoV3Head', predictor=dict(mlp, in_channels=PROJ,
                                                    out_channels=PROJ, num_layers=2),
                  loss=dict(type='CrossEntropyLoss', loss_weight=0.4), temperature=0.2))
    if hirl:
        cfg.update(type='HIRL', algorithm='MoCoV3', num_clusters=[6, 3],
                   semantic_head=dict(type='SemanticPathHead', num_neg_path=8,
                                      num_mlp_layer=2), **hirl)
    return cfg


def _model(**hirl):
    torch.manual_seed(0)
    model = MODELS.build(_mocov3_cfg(embedding='neck', **hirl))
    model.init_weights()
    _fill_prototypes(model)  # the semantic loss runs (as after the warm-up)
    return model


def _plain(hirl_model) -> MoCoV3:
    """The same MoCo v3 without HIRL, with the HIRL model's weights."""
    plain = MODELS.build(_mocov3_cfg())
    result = plain.load_state_dict(hirl_model.state_dict(), strict=False)
    assert not result.missing_keys
    return plain


def _batch():
    torch.manual_seed(1)
    views = [torch.randn(BATCH, 3, SIZE, SIZE) for _ in range(2)]
    samples = [DataSample(metainfo=dict(sample_idx=i)) for i in range(BATCH)]
    return views, samples


def _count_calls(model, modules: dict) -> dict:
    """Forward calls of each named module during one ``loss`` of ``model``."""
    counts = dict.fromkeys(modules, 0)
    handles = [module.register_forward_hook(
        lambda *_, name=name: counts.__setitem__(name, counts[name] + 1))
        for name, module in modules.items()]
    views, samples = _batch()
    torch.manual_seed(2)
    model.loss(views, samples)
    for handle in handles:
        handle.remove()
    return counts


def _encoders(model) -> dict:
    momentum = model.momentum_encoder.module  # Sequential(backbone, neck), an EMA copy
    return dict(backbone=model.backbone, neck=model.neck, predictor=model.head.predictor,
                momentum_backbone=momentum[0], momentum_neck=momentum[1])


def test_built_as_hirl_mocov3_on_the_projector():
    model = _model()
    assert isinstance(model, MoCoV3) and isinstance(model, HIRLMixin)
    assert type(model).__name__ == 'HIRLMoCoV3'
    assert model.embedding == 'neck'
    assert model.semantic_head.in_channels == PROJ == model.prototypes.dim


@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_semantic_heads_read_the_first_views_projection(mode):
    """The head's input is the projector (neck) output of the first view's [CLS], i.e.
    ``neck(backbone(view_1))[0]`` on the same weights in the same mode."""
    model = _model()
    model.train(mode == 'train')
    views, samples = _batch()
    embedding = _head_input(model, views, samples)
    assert embedding.shape == (BATCH, PROJ)
    with torch.no_grad():  # loss() changed only the momentum encoder's weights
        direct = model.neck(model.backbone(views[0]))[0]
    torch.testing.assert_close(embedding, direct)
    with torch.no_grad():  # not the second view's
        second = model.neck(model.backbone(views[1]))[0]
    assert not torch.allclose(embedding, second)


def test_no_extra_forward_and_the_semantic_loss_trains_projector_and_vit():
    model = _model()
    hirl_counts = _count_calls(model, _encoders(model))
    plain = _plain(model)
    plain_counts = _count_calls(plain, _encoders(plain))
    # MoCo v3 itself: each view once through backbone, neck and predictor, and once
    # through the momentum encoder; HIRL adds no call to any of them.
    assert hirl_counts == plain_counts == dict.fromkeys(plain_counts, 2)

    views, samples = _batch()
    losses = model.loss(views, samples)
    assert set(losses) == {'loss', 'loss_semantic'}
    assert float(losses['loss_semantic'].detach()) > 0
    model.zero_grad()
    losses['loss_semantic'].backward()
    for name in ('neck', 'backbone'):
        grads = [p.grad for p in getattr(model, name).parameters() if p.grad is not None]
        assert grads and any(float(g.abs().sum()) > 0 for g in grads), name
    assert model.backbone.patch_embed.projection.weight.grad is None  # stop_grad_conv1
    assert all(p.grad is None for p in model.momentum_encoder.parameters())


def test_warmup_adds_a_zero_loss_and_moco_v3s_own_loss_is_unchanged():
    model = MODELS.build(_mocov3_cfg(embedding='neck'))
    model.init_weights()
    assert not model.prototypes.ready
    plain = _plain(model)
    views, samples = _batch()
    torch.manual_seed(2)
    losses = model.loss(copy.deepcopy(views), samples)
    torch.manual_seed(2)
    expected = plain.loss(copy.deepcopy(views), samples)
    assert float(losses['loss_semantic'].detach()) == 0.0
    torch.testing.assert_close(losses['loss'], expected['loss'])


def test_clustering_embeds_with_the_momentum_encoder():
    model = _model()
    momentum = model.momentum_encoder.module
    encoder = model.clustering_encoder()
    assert encoder.backbone is momentum[0] and encoder.neck is momentum[1]
    with torch.no_grad():  # make the EMA copy differ from the online encoder
        for param in momentum.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    model.eval()
    x = torch.randn(3, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = momentum(x)[0]
        online = model.neck(model.backbone(x))[0]
    got = model.extract_clustering_embedding(x)
    assert got.shape == (3, PROJ)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, online)

    online_model = _model(feature_source='online')
    assert online_model.clustering_encoder().backbone is online_model.backbone


def test_vit_b16_config_builds_on_the_meta_device():
    """configs/hirl/mocov3_vit-b16.py: the reference's MoCo v3 settings (docs/en/method.md)."""
    cfg = Config.fromfile(str(CONFIGS / 'hirl' / 'mocov3_vit-b16.py'))
    assert cfg.model.type == 'HIRL' and cfg.model.algorithm == 'MoCoV3'
    assert cfg.model.num_clusters == [30000, 10000, 5000]
    assert cfg.model.embedding == 'neck' and cfg.model.feature_source == 'auto'
    assert cfg.model.semantic_head.num_neg_path == 100
    assert cfg.model.semantic_head.num_mlp_layer == 5
    assert not cfg.model.iter_wise_assignment
    assert cfg.train_cfg.max_epochs == 400
    assert cfg.custom_imports.imports == ['hirl_mm']  # its other base is mmpretrain's
    init_default_scope(cfg.default_scope)
    with torch.device('meta'):
        model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'HIRLMoCoV3'
    assert model.backbone.embed_dims == 768 and model.backbone.patch_size == 16
    assert model.semantic_head.in_channels == model.prototypes.dim == 256  # the projector
    assert model.prototypes.num_clusters == [30000, 10000, 5000]
    assert model.semantic_head.num_neg_path == 100
    for mlp in model.semantic_head.projectors:
        linears = [m for m in mlp if isinstance(m, torch.nn.Linear)]
        assert len(linears) == 5 and all(m.in_features == m.out_features == 256
                                         for m in linears)
    assert model.clustering_encoder().backbone is model.momentum_encoder.module[0]

    (hook_cfg, ) = cfg.custom_hooks
    hook = HOOKS.build(hook_cfg)
    assert type(hook).__name__ == 'HierarchicalClusteringHook'
    assert hook.warmup_epochs == 40 and hook.interval == 1
    # The reference's eval transform for clustering: resize 256 (bilinear), crop 224.
    assert [t['type'] for t in hook.extract_pipeline] == \
        ['LoadImageFromFile', 'ResizeEdge', 'CenterCrop', 'PackInputs']
    assert hook.extract_pipeline[1]['scale'] == 256
    assert hook.extract_pipeline[2]['crop_size'] == 224


def _without_hirl(model_cfg) -> dict:
    return {k: v for k, v in model_cfg.items() if k not in HIRL_MODEL_KEYS}


@pytest.mark.parametrize('hirl,baseline', [
    ('hirl/mocov3_vit-b16.py', 'baselines/mocov3_vit-base-p16_16xb256-amp-coslr-400e_in1k.py'),
    ('study/hirl-mocov3_tiny-vit_fashion-mnist.py',
     'study/mocov3_tiny-vit_fashion-mnist.py')])
def test_hirl_configs_differ_from_their_baseline_only_by_hirl(hirl, baseline):
    cfg = Config.fromfile(str(CONFIGS / hirl))
    base = Config.fromfile(str(CONFIGS / baseline))
    assert base.model.type == 'MoCoV3' and 'num_clusters' not in base.model
    assert _without_hirl(cfg.model) == _without_hirl(base.model)
    for key in ('train_dataloader', 'param_scheduler', 'train_cfg', 'randomness'):
        assert cfg[key] == base[key], key
    # The semantic heads' own group (the authors' add_param_group) is all HIRL adds.
    assert without_hirl_head_group(cfg.optim_wrapper) == \
        without_hirl_head_group(base.optim_wrapper)
    assert set(cfg.optim_wrapper.paramwise_cfg.fixed_decay_groups) == {'semantic_head'}
    # The schedule spans the whole run: warm-up then cosine to its last epoch.
    warmup, cosine = base.param_scheduler
    assert warmup.type == 'LinearLR' and cosine.type == 'CosineAnnealingLR'
    assert warmup.end == cosine.begin
    assert cosine.end == cosine.begin + cosine.T_max == base.train_cfg.max_epochs
    assert [h['type'] for h in cfg.custom_hooks] == ['HierarchicalClusteringHook']


def test_baseline_is_mmpretrains_vit_b16_config_at_400_epochs():
    cfg = Config.fromfile(
        str(CONFIGS / 'baselines' / 'mocov3_vit-base-p16_16xb256-amp-coslr-400e_in1k.py'))
    assert cfg.model.backbone.type == 'MoCoV3ViT' and cfg.model.backbone.arch == 'base'
    assert cfg.model.neck.out_channels == 256 and cfg.model.base_momentum == 0.01
    assert cfg.train_cfg.max_epochs == 400
    assert cfg.param_scheduler[0].end == 40  # MoCo v3's and the reference's warm-up
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.1
    assert cfg.train_dataloader.batch_size * 16 == 4096  # 16 GPUs as the config's name


def test_study_config_is_a_tiny_vit():
    cfg = Config.fromfile(str(CONFIGS / 'study' / 'hirl-mocov3_tiny-vit_fashion-mnist.py'))
    init_default_scope(cfg.default_scope)
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == 'HIRLMoCoV3'
    assert model.backbone.embed_dims == 64 and model.backbone.num_layers == 4
    assert model.prototypes.num_clusters == [100, 10, 5]
    assert model.semantic_head.in_channels == model.prototypes.dim == 64  # the projector
    model.init_weights()
    model.eval()
    with torch.no_grad():
        assert model.extract_clustering_embedding(torch.randn(2, 3, 28, 28)).shape == (2, 64)
