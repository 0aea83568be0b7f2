"""HIRL around mmpretrain's BEiT (v1): the embedding as the reference's released run took it
(the final-norm [CLS] token, ``embedding='backbone'``) and the reference code's projector
option (``BEiTTokenProjector`` + ``BEiTV1ProjectedHead``, ``embedding='neck'``), the
forwards, the clustering encoder, and the shipped configs (ViT-B/16 on the meta device)."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope
from mmpretrain.datasets.transforms import BEiTMaskGenerator, MultiView, PackInputs
from mmpretrain.models import BEiT
from mmpretrain.models.heads import BEiTV1Head
from mmpretrain.structures import DataSample

from hirl_mm.models.algorithms import HIRLMixin
from hirl_mm.models.heads import BEiTV1ProjectedHead
from hirl_mm.models.necks import BEiTTokenProjector
from hirl_mm.models.utils.embedding_encoder import infer_output_width
from hirl_mm.registry import HOOKS, MODELS
from hirl_mm.utils.feature_extraction import extract_embeddings
from test_hirl import _fill_prototypes, _head_input
from tiny_setup import HIRL_MODEL_KEYS, without_hirl_head_group

pytestmark = pytest.mark.usefixtures('single_thread')

CONFIGS = Path(__file__).parents[3] / 'configs'
EMBED, VOCAB = 32, 16  # the toy ViT's width, the toy tokenizer's vocabulary
BATCH, SIZE, PATCH = 4, 16, 4  # a 4x4 patch grid; the tokenizer sees 32 px (/8: 4x4)
GRID = SIZE // PATCH
HIRL_KEYS = HIRL_MODEL_KEYS


def _beit_cfg(projector: bool = False, **hirl) -> dict:
    """A toy BEiT v1 (2-block ViT, 16-pixel input, tiny random DALL-E), with the reference
    code's projector when ``projector``, under HIRL when ``hirl`` is given."""
    cfg = dict(
        type='BEiT',
        backbone=dict(type='BEiTPretrainViT',
                      arch=dict(embed_dims=EMBED, num_layers=2, num_heads=2,
                                feedforward_channels=64),
                      img_size=SIZE, patch_size=PATCH, final_norm=True, out_type='raw',
                      layer_scale_init_value=0.1),
        neck=dict(type='BEiTTokenProjector', in_channels=EMBED) if projector else None,
        head=dict(type='BEiTV1ProjectedHead' if projector else 'BEiTV1Head',
                  embed_dims=EMBED, num_embed=VOCAB, loss=dict(type='CrossEntropyLoss')),
        target_generator=dict(type='DALL-E', n_hid=4, n_blk_per_group=1, vocab_size=VOCAB))
    if hirl:
        cfg.update(type='HIRL', algorithm='BEiT', num_clusters=[6, 3],
                   semantic_head=dict(type='SemanticPathHead', num_neg_path=8,
                                      num_mlp_layer=2), **hirl)
    return cfg


def _model(projector: bool = False, fill: bool = True, **hirl):
    torch.manual_seed(0)
    embedding = 'neck' if projector else 'backbone'
    model = MODELS.build(_beit_cfg(projector, embedding=embedding, **hirl))
    model.init_weights()
    if fill:
        _fill_prototypes(model)  # the semantic loss runs (as after the warm-up)
    return model


def _plain(hirl_model, projector: bool) -> BEiT:
    """The same BEiT without HIRL, with the HIRL model's weights."""
    plain = MODELS.build(_beit_cfg(projector))
    result = plain.load_state_dict(hirl_model.state_dict(), strict=False)
    assert not result.missing_keys
    return plain


def _batch(seed: int = 1):
    """BEiT's inputs: the image, the tokenizer's image, and a block mask per sample."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    views = [torch.randn(BATCH, 3, SIZE, SIZE), torch.rand(BATCH, 3, 2 * SIZE, 2 * SIZE)]
    masker = BEiTMaskGenerator(input_size=GRID, num_masking_patches=6, min_num_patches=2)
    samples = []
    for i in range(BATCH):
        sample = DataSample(metainfo=dict(sample_idx=i))
        sample.mask = torch.from_numpy(masker(dict())['mask']).bool()
        samples.append(sample)
    return views, samples


def _masks(samples) -> torch.Tensor:
    return torch.stack([sample.mask for sample in samples])


def _direct_embedding(model, images, mask=None) -> torch.Tensor:
    """What HIRL should train on / cluster, computed directly: the projector's [CLS]
    output, or the final-norm [CLS] token without a projector."""
    tokens = model.backbone(images, mask)
    if model.with_neck:
        return model.neck(tokens)[-1]
    return tokens[-1][:, 0]


def _count_calls(model) -> dict:
    """Forward calls of backbone, neck and tokenizer during one ``loss`` of ``model``."""
    modules = dict(backbone=model.backbone, target_generator=model.target_generator)
    if model.with_neck:
        modules['neck'] = model.neck
    counts = dict.fromkeys(modules, 0)
    handles = [module.register_forward_hook(
        lambda *_, name=name: counts.__setitem__(name, counts[name] + 1))
        for name, module in modules.items()]
    views, samples = _batch()
    model.loss(views, samples)
    for handle in handles:
        handle.remove()
    return counts


# ------------------------------------------------------------------ the projector's parts


def test_projector_is_the_reference_mlp_on_every_token():
    torch.manual_seed(0)
    neck = BEiTTokenProjector(in_channels=EMBED, num_layers=2)
    first, norm, act, last = neck.mlp
    assert isinstance(first, torch.nn.Linear) and first.bias is None  # BN follows
    assert isinstance(norm, torch.nn.BatchNorm1d) and isinstance(act, torch.nn.ReLU)
    assert isinstance(last, torch.nn.Linear) and last.bias is not None
    assert (first.in_features, first.out_features, last.out_features) == (EMBED,) * 3
    assert infer_output_width(neck) == EMBED
    assert len([m for m in BEiTTokenProjector(8, num_layers=3).modules()
                if isinstance(m, torch.nn.Linear)]) == 3

    # hirl/layers/common.py MLP: Linear, then BN over all leading dims flattened, ReLU,
    # Linear; applied to [B, L, C] tokens.
    tokens = torch.randn(3, 5, EMBED)
    for mode in (True, False):
        neck.train(mode)
        hidden = first(tokens)
        hidden = torch.relu(norm(hidden.flatten(0, -2)).view_as(hidden))
        expected = last(hidden)
        projected, cls = neck((torch.randn(3, 5, EMBED), tokens))  # the last output counts
        torch.testing.assert_close(projected, expected)
        torch.testing.assert_close(cls, expected[:, 0])
    with pytest.raises(ValueError, match='out_type'):
        neck((torch.randn(3, EMBED), ))
    with pytest.raises(ValueError, match='num_layers'):
        BEiTTokenProjector(EMBED, num_layers=0)


def test_projected_head_is_beit_v1s_loss_on_the_projected_tokens():
    torch.manual_seed(0)
    head = BEiTV1ProjectedHead(embed_dims=EMBED, num_embed=VOCAB,
                               loss=dict(type='CrossEntropyLoss'))
    v1 = BEiTV1Head(embed_dims=EMBED, num_embed=VOCAB, loss=dict(type='CrossEntropyLoss'))
    v1.load_state_dict(head.state_dict())
    feats = torch.randn(2, 1 + GRID * GRID, EMBED)
    target = torch.randn(2, VOCAB, GRID, GRID)
    mask = torch.rand(2, GRID, GRID) > 0.5
    torch.testing.assert_close(head.loss(feats, feats[:, 0], target, mask),
                               v1.loss(feats, target, mask))


# ------------------------------------------------------------------ HIRL-BEiT


@pytest.mark.parametrize('projector', [False, True], ids=['cls', 'projector'])
def test_built_as_hirl_beit(projector):
    model = _model(projector)
    assert isinstance(model, BEiT) and isinstance(model, HIRLMixin)
    assert type(model).__name__ == 'HIRLBEiT'
    assert model.embedding == ('neck' if projector else 'backbone')
    assert model.with_neck == projector
    assert model.semantic_head.in_channels == model.prototypes.dim == EMBED
    encoder = model.clustering_encoder()  # no momentum encoder: the online one
    assert encoder.backbone is model.backbone
    assert encoder.neck is (model.neck if projector else None)


@pytest.mark.parametrize('projector', [False, True], ids=['cls', 'projector'])
@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_semantic_heads_read_the_masked_first_images_cls(projector, mode):
    """The semantic head's input is the [CLS] embedding of the masked first image, i.e.
    ``neck(backbone(view, mask))[-1]`` (projector) or ``backbone(view, mask)[-1][:, 0]``,
    on the same weights in the same mode."""
    model = _model(projector)
    model.train(mode == 'train')
    views, samples = _batch()
    embedding = _head_input(model, views, samples)
    assert embedding.shape == (BATCH, EMBED)
    with torch.no_grad():
        direct = _direct_embedding(model, views[0], _masks(samples))
        unmasked = _direct_embedding(model, views[0])
    torch.testing.assert_close(embedding, direct)
    assert not torch.allclose(embedding, unmasked)  # the mask was applied


@pytest.mark.parametrize('projector', [False, True], ids=['cls', 'projector'])
def test_no_extra_forward_and_beits_own_loss_is_unchanged(projector):
    model = _model(projector, fill=False)  # warm-up: zero semantic loss
    plain = _plain(model, projector)
    hirl_counts, plain_counts = _count_calls(model), _count_calls(plain)
    assert hirl_counts == plain_counts == dict.fromkeys(plain_counts, 1)

    views, samples = _batch()
    losses = model.loss(copy.deepcopy(views), samples)
    expected = plain.loss(copy.deepcopy(views), samples)
    assert set(losses) == {'loss', 'loss_semantic'}
    assert float(losses['loss_semantic'].detach()) == 0.0
    torch.testing.assert_close(losses['loss'], expected['loss'])


@pytest.mark.parametrize('projector', [False, True], ids=['cls', 'projector'])
def test_gradients_of_both_losses(projector):
    """BEiT's masked-token loss trains the projector (its classifier reads the projected
    tokens); the semantic loss reaches the projector and the ViT; nothing trains the
    tokenizer."""
    model = _model(projector)
    views, samples = _batch()
    losses = model.loss(views, samples)
    assert float(losses['loss_semantic'].detach()) > 0
    trained = ['backbone'] + (['neck'] if projector else [])
    for key in ('loss', 'loss_semantic'):
        model.zero_grad()
        losses[key].backward(retain_graph=True)
        for name in trained + (['head'] if key == 'loss' else ['semantic_head']):
            grads = [p.grad for p in getattr(model, name).parameters()
                     if p.grad is not None]
            assert grads and any(float(g.abs().sum()) > 0 for g in grads), (key, name)
        assert all(p.grad is None for p in model.target_generator.parameters())
    if projector:  # the MIM loss reaches the ViT through the projector only
        model.zero_grad()
        losses['loss'].backward()
        assert float(model.neck.mlp[0].weight.grad.abs().sum()) > 0


@pytest.mark.parametrize('projector', [False, True], ids=['cls', 'projector'])
def test_clustering_embeds_unmasked_images(projector):
    """Clustering runs the online backbone without a mask (and the projector), [CLS]."""
    model = _model(projector)
    model.eval()
    x = torch.randn(3, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = _direct_embedding(model, x)
        masked = _direct_embedding(model, x, torch.ones(3, GRID, GRID, dtype=torch.bool))
    got = model.extract_clustering_embedding(x)
    assert got.shape == (3, EMBED)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, masked)


@pytest.mark.parametrize('projector', [False, True], ids=['cls', 'projector'])
def test_clustering_extraction_through_beits_two_image_preprocessor(projector):
    """The hook's extraction with BEiT's TwoNormDataPreprocessor: the extract pipeline
    packs each image twice (the preprocessor normalises a pair per sample) and the
    embedding is that of the first, normalised as the model's input."""
    model = _model(projector)
    model.data_preprocessor = MODELS.build(dict(
        type='TwoNormDataPreprocessor', mean=[100.] * 3, std=[50.] * 3,
        second_mean=[-31.875] * 3, second_std=[318.75] * 3, to_rgb=False))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(5)]
    pipeline = [MultiView(num_views=2, transforms=[[]]), PackInputs()]
    dataset = []
    for i, img in enumerate(images):
        results = dict(img=img, sample_idx=i)
        for transform in pipeline:
            results = transform(results)
        dataset.append(results)
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, collate_fn=default_collate)
    got = extract_embeddings(model, loader, model.extract_clustering_embedding,
                             show_progress=False)
    model.eval()
    with torch.no_grad():
        x = (torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() - 100.) / 50.
        expected = torch.nn.functional.normalize(_direct_embedding(model, x), dim=1)
    torch.testing.assert_close(got, expected)


# ------------------------------------------------------------------ the shipped configs


def _meta_build(cfg):
    """Build a config's model on the meta device (no memory, no tokenizer download)."""
    cfg = copy.deepcopy(cfg)
    cfg.model.target_generator.update(init_cfg=None, device='meta')
    init_default_scope(cfg.default_scope)
    with torch.device('meta'):
        return MODELS.build(cfg.model)


def test_vit_b16_config_is_the_reference_run_and_builds_on_the_meta_device():
    """configs/hirl/beit_vit-b16.py: hirl_beit_base_400eps.yaml (docs/en/method.md)."""
    cfg = Config.fromfile(str(CONFIGS / 'hirl' / 'beit_vit-b16.py'))
    assert cfg.model.type == 'HIRL' and cfg.model.algorithm == 'BEiT'
    assert cfg.model.num_clusters == [30000, 10000, 1000]
    assert cfg.model.embedding == 'backbone' and cfg.model.feature_source == 'auto'
    assert cfg.model.semantic_head.num_neg_path == 100
    assert cfg.model.semantic_head.num_mlp_layer == 2
    assert not cfg.model.iter_wise_assignment and cfg.model.neck is None
    assert cfg.train_cfg.max_epochs == 400
    model = _meta_build(cfg)
    assert type(model).__name__ == 'HIRLBEiT'
    assert model.backbone.embed_dims == 768 and model.backbone.num_layers == 12
    assert model.backbone.patch_resolution == (14, 14)  # 224 / 16
    assert model.semantic_head.in_channels == model.prototypes.dim == 768  # [CLS]
    assert model.prototypes.num_clusters == [30000, 10000, 1000]
    assert model.semantic_head.num_neg_path == 100
    for mlp in model.semantic_head.projectors:
        linears = [m for m in mlp if isinstance(m, torch.nn.Linear)]
        assert len(linears) == 2 and all(m.in_features == m.out_features == 768
                                         for m in linears)
    assert model.clustering_encoder().backbone is model.backbone
    assert model.head.cls_head.out_features == 8192
    assert model.target_generator.blocks.output.conv.w.shape[0] == 8192

    (hook_cfg, ) = cfg.custom_hooks
    hook = HOOKS.build(hook_cfg)
    assert type(hook).__name__ == 'HierarchicalClusteringHook'
    assert hook.warmup_epochs == 40 and hook.interval == 1
    # The reference's eval transform (resize 256, crop 224), the image packed twice.
    assert [t['type'] for t in hook.extract_pipeline] == \
        ['LoadImageFromFile', 'ResizeEdge', 'CenterCrop', 'MultiView', 'PackInputs']
    assert hook.extract_pipeline[1]['scale'] == 256
    assert hook.extract_pipeline[2]['crop_size'] == 224
    assert hook.extract_pipeline[3]['num_views'] == 2


def test_vit_b16_projector_variant_builds_on_the_meta_device():
    """``beit_projector``: the reference code's ``beit_base_with_proj`` (a 2-layer MLP on
    every token, SyncBN, 768-d), HIRL on its [CLS] output."""
    cfg = Config.fromfile(str(CONFIGS / 'hirl' / 'beit_vit-b16.py'))
    cfg.merge_from_dict(dict(model=cfg.beit_projector))
    assert cfg.model.embedding == 'neck'
    model = _meta_build(cfg)
    assert isinstance(model.neck, BEiTTokenProjector)
    assert isinstance(model.head, BEiTV1ProjectedHead)
    assert isinstance(model.neck.mlp[1], torch.nn.SyncBatchNorm)
    assert model.head.cls_head.in_features == 768
    assert model.semantic_head.in_channels == model.prototypes.dim == 768
    assert model.clustering_encoder().neck is model.neck


@pytest.mark.parametrize('hirl,baseline', [
    ('hirl/beit_vit-b16.py', 'baselines/beit_beit-base-p16_8xb256-coslr-400e_in1k.py'),
    ('study/hirl-beit_tiny-vit_fashion-mnist.py', 'study/beit_tiny-vit_fashion-mnist.py')])
def test_hirl_configs_differ_from_their_baseline_only_by_hirl(hirl, baseline):
    cfg = Config.fromfile(str(CONFIGS / hirl))
    base = Config.fromfile(str(CONFIGS / baseline))
    assert base.model.type == 'BEiT' and 'num_clusters' not in base.model
    assert {k: v for k, v in cfg.model.items() if k not in HIRL_KEYS} == \
        {k: v for k, v in base.model.items() if k not in HIRL_KEYS}
    for key in ('train_dataloader', 'param_scheduler', 'train_cfg', 'randomness'):
        assert cfg[key] == base[key], key
    # The semantic heads' own group (the authors' add_param_group) is all HIRL adds.
    assert without_hirl_head_group(cfg.optim_wrapper) == \
        without_hirl_head_group(base.optim_wrapper)
    assert set(cfg.optim_wrapper.paramwise_cfg.fixed_decay_groups) == {'semantic_head'}
    warmup, cosine = base.param_scheduler
    assert warmup.type == 'LinearLR' and cosine.type == 'CosineAnnealingLR'
    assert warmup.end == cosine.begin
    assert cosine.end == cosine.begin + cosine.T_max == base.train_cfg.max_epochs
    assert cosine.eta_min == 1e-5
    assert [h['type'] for h in cfg.custom_hooks] == ['HierarchicalClusteringHook']


def test_baseline_is_mmpretrains_beit_config_at_400_epochs():
    cfg = Config.fromfile(
        str(CONFIGS / 'baselines' / 'beit_beit-base-p16_8xb256-coslr-400e_in1k.py'))
    assert cfg.model.type == 'BEiT' and cfg.model.neck is None
    backbone = cfg.model.backbone
    assert backbone.type == 'BEiTPretrainViT' and backbone.arch == 'base'
    assert backbone.drop_path_rate == 0.1 and backbone.layer_scale_init_value == 0.1
    assert cfg.model.head.type == 'BEiTV1Head' and cfg.model.head.num_embed == 8192
    assert cfg.model.target_generator.type == 'DALL-E'
    assert cfg.model.target_generator.init_cfg.type == 'Pretrained'
    assert cfg.train_cfg.max_epochs == 400
    assert cfg.param_scheduler[0].end == 10
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'AdamW' and optimizer.lr == 1.5e-3
    assert optimizer.weight_decay == 0.05 and cfg.optim_wrapper.clip_grad.max_norm == 3.0
    assert cfg.train_dataloader.batch_size * 8 == 2048  # 8 GPUs as the config's name
    masker = cfg.train_dataloader.dataset.pipeline[-2]
    assert masker.type == 'BEiTMaskGenerator' and masker.num_masking_patches == 75


@pytest.mark.parametrize('projector', [False, True], ids=['cls', 'projector'])
def test_study_config_is_a_tiny_vit_with_a_matching_tokenizer(projector):
    """The tiny tokenizer's codes sit on the ViT's 7x7 patch grid, its vocabulary is the
    classifier's, and the mask generator masks that grid."""
    cfg = Config.fromfile(str(CONFIGS / 'study' / 'hirl-beit_tiny-vit_fashion-mnist.py'))
    if projector:
        cfg.merge_from_dict(dict(model=cfg.beit_projector))
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert type(model).__name__ == 'HIRLBEiT'
    assert model.backbone.embed_dims == 64 and model.backbone.num_layers == 4
    assert model.backbone.patch_resolution == (7, 7)
    assert model.prototypes.num_clusters == [100, 10, 5]
    assert model.semantic_head.in_channels == model.prototypes.dim == 64
    assert model.with_neck == projector

    crop, masker = cfg.train_dataloader.dataset.pipeline[2:4]
    assert (crop.size, crop.second_size) == (28, 56)
    with torch.no_grad():
        codes = model.target_generator(torch.rand(2, 3, crop.second_size, crop.second_size))
    assert codes.shape == (2, model.head.cls_head.out_features, 7, 7)
    mask = BEiTMaskGenerator(**{k: v for k, v in masker.items() if k != 'type'})(dict())
    assert mask['mask'].shape == (7, 7) and 0 < mask['mask'].sum() <= 19

    model.eval()
    with torch.no_grad():
        embedding = model.extract_clustering_embedding(torch.randn(2, 3, 28, 28))
    assert embedding.shape == (2, 64)
