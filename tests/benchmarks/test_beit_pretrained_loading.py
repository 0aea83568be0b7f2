"""BEiT (v1) backbones in the BEiT fine-tuning config, on CPU (fast).

* A tiny BEiT and a tiny HIRL-BEiT (configs/study/{,hirl-}beit_tiny-vit_fashion-mnist.py)
  are built, every backbone tensor made distinct (the shared relative position bias starts
  at zero), and saved as mmengine's runner saves them. The converter
  (tools/model_converters/beit_backbone.py) writes ``backbone.*`` with exactly the keys of
  mmpretrain's fine-tuning ``BEiTViT`` (use_rel_pos_bias=True,
  use_shared_rel_pos_bias=False, mean pooling): the shared table and index copied into
  every block, no ``mask_token`` or pre-training final norm, the pooled-feature LayerNorm
  at its initial values.
* That checkpoint loads key for key (``verify_pretrained_loading``) into the fine-tuning
  config (configs/benchmarks/classification/imagenet/beit-base-p16_ft-*) shrunk to the tiny
  ViT; after ``init_weights()`` every backbone tensor is the pre-trained one (each block's
  table the shared one), the blocks compute exactly what the pre-training backbone
  computes, and a forward gives logits.
* The raw checkpoint is refused, the message listing the mismatched keys.
* The full-size config's ViT-B/16 has exactly the converted keys and shapes of
  configs/baselines/beit_beit-base-p16_8xb256-coslr-400e_in1k.py's (built on the meta
  device).
* The config's protocol values and its layer-wise lr decay / weight-decay groups.
"""
import ast
import copy
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Dict, NamedTuple

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import DefaultScope

from hirl_mm.registry import MODELS  # imports hirl_mm: its modules, checkpoint types
from hirl_mm.utils.beit_backbone import beit_finetune_state
from hirl_mm.utils.pretrained import (PretrainedLoadingError, inject_pretrained,
                                      verify_pretrained_loading)

REPO = Path(__file__).resolve().parents[2]
STUDY = REPO / 'configs' / 'study'
FINETUNE = REPO / ('configs/benchmarks/classification/imagenet/'
                   'beit-base-p16_ft-8xb128-coslr-100e_in1k.py')
CONVERTER = REPO / 'tools' / 'model_converters' / 'beit_backbone.py'
MARKER = dict(type='Pretrained', checkpoint=None, prefix='backbone.')

# The ViT of the tiny pre-training configs: 28-pixel images, patch 4 -> a 7 x 7 grid.
TINY_ARCH = dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=256)
TINY_WIDTH, TINY_DEPTH, TINY_PATCH = 64, 4, 4
SHARED_TABLE = 'rel_pos_bias.relative_position_bias_table'
SHARED_INDEX = 'rel_pos_bias.relative_position_index'
PRETRAIN_ONLY = {'mask_token', 'ln1.weight', 'ln1.bias', SHARED_TABLE, SHARED_INDEX}
LAYER_DECAY, FT_LR = 0.65, 4e-3

pytestmark = pytest.mark.usefixtures('single_thread')


class Pretrained(NamedTuple):
    """A tiny BEiT / HIRL-BEiT: its raw and converted checkpoints, its backbone."""

    name: str
    model: torch.nn.Module
    raw: Path
    converted: Path
    backbone: Dict[str, torch.Tensor]  # pre-training backbone tensors, unprefixed


# ----------------------------------------------------------------------------- helpers
def _load_tool(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f'beit_tool_{path.stem}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build_mmpretrain(model_cfg: dict) -> torch.nn.Module:
    from mmpretrain.registry import MODELS as registry
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return registry.build(model_cfg)


def _shrink_finetune() -> dict:
    cfg = Config.fromfile(str(FINETUNE))
    cfg.model.backbone.update(arch=TINY_ARCH, img_size=28, patch_size=TINY_PATCH)
    cfg.model.head.in_channels = TINY_WIDTH
    return dict(cfg.model.to_dict(), data_preprocessor=cfg.data_preprocessor.to_dict())


def _build_target(checkpoint: Path):
    """The fine-tuning config shrunk to the tiny ViT, its marker pointed at ``checkpoint``."""
    model_cfg = _shrink_finetune()
    assert model_cfg['backbone']['init_cfg'] == MARKER
    modules = inject_pretrained(model_cfg, str(checkpoint))
    assert modules == ['backbone']
    return _build_mmpretrain(model_cfg), modules


def _tiny_finetune_backbone() -> torch.nn.Module:
    backbone_cfg = _shrink_finetune()['backbone']
    backbone_cfg.pop('init_cfg')
    return _build_mmpretrain(backbone_cfg)


# ----------------------------------------------------------------------------- fixture
@pytest.fixture(scope='module', params=['beit', 'hirl-beit'])
def pretrained(request, tmp_path_factory) -> Pretrained:
    """A tiny BEiT / HIRL-BEiT, every backbone tensor distinct, saved and converted."""
    name = request.param
    cfg = Config.fromfile(str(STUDY / f'{name}_tiny-vit_fashion-mnist.py'))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'hirl_mm')):
        model = MODELS.build(cfg.model)
    model.init_weights()
    assert type(model.backbone).__name__ == 'BEiTPretrainViT'
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # the shared bias starts at zero, the norms at one / zero
        for param in model.backbone.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=generator))
    folder = tmp_path_factory.mktemp(f'{name}_ckpt')
    raw = folder / 'epoch_1.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1, iter=2)), raw)
    converted = folder / 'beit_backbone.pth'
    assert _load_tool(CONVERTER).main([str(raw), str(converted)]) == 0
    backbone = {k[len('backbone.'):]: v.clone() for k, v in model.state_dict().items()
                if k.startswith('backbone.')}
    return Pretrained(name, model, raw, converted, backbone)


# ------------------------------------------------------------------------ conversion
def test_converter_writes_exactly_the_finetuning_keys(pretrained):
    """The keys of the fine-tuning BEiTViT, no more, no less; each block's table and index
    are the shared ones (the index also what BEiTViT builds itself); every other
    pre-trained tensor unchanged; ln2 at LayerNorm's initial values."""
    loaded = torch.load(pretrained.converted, map_location='cpu', weights_only=True)
    state = {k[len('backbone.'):]: v for k, v in loaded['state_dict'].items()}
    assert set(loaded['state_dict']) == {f'backbone.{k}' for k in state}
    target = _tiny_finetune_backbone().state_dict()
    assert set(state) == set(target)
    for key, value in target.items():
        assert state[key].shape == value.shape, key
    shared_table = pretrained.backbone[SHARED_TABLE]
    shared_index = pretrained.backbone[SHARED_INDEX]
    assert shared_table.abs().sum() > 0
    for i in range(TINY_DEPTH):
        table = state[f'layers.{i}.attn.relative_position_bias_table']
        index = state[f'layers.{i}.attn.relative_position_index']
        assert torch.equal(table, shared_table)
        assert table.data_ptr() != shared_table.data_ptr()  # copies, not views
        assert torch.equal(index, shared_index)
        assert torch.equal(index, target[f'layers.{i}.attn.relative_position_index'])
    for key, value in pretrained.backbone.items():
        if key not in PRETRAIN_ONLY:
            assert torch.equal(state[key], value), key
    assert not PRETRAIN_ONLY & set(state)
    assert torch.equal(state['ln2.weight'], torch.ones(TINY_WIDTH))
    assert torch.equal(state['ln2.bias'], torch.zeros(TINY_WIDTH))
    meta = loaded['meta']
    assert meta['epoch'] == 1 and meta['iter'] == 2
    assert meta['source_checkpoint'] == str(pretrained.raw.resolve())
    assert meta['fresh_keys'] == ['backbone.ln2.weight', 'backbone.ln2.bias']


def test_converter_refuses_what_is_not_a_beit_pretraining_checkpoint(pretrained, tmp_path,
                                                                     capsys):
    """Already converted, a ViT without a shared bias, no backbone: clear errors."""
    tool = _load_tool(CONVERTER)
    assert tool.main([str(pretrained.converted), str(tmp_path / 'again.pth')]) == 2
    assert 'already has per-block tables' in capsys.readouterr().err
    vit_like = {f'backbone.{k}': v for k, v in pretrained.backbone.items()
                if not k.startswith('rel_pos_bias.')}
    with pytest.raises(KeyError, match='teacher_backbone.py'):
        beit_finetune_state(vit_like)
    with pytest.raises(KeyError, match=r"top-level modules: \['head'\]"):
        beit_finetune_state({'head.fc.weight': torch.zeros(1)})
    assert tool.main([str(tmp_path / 'missing.pth'), str(tmp_path / 'out.pth')]) == 2
    assert not (tmp_path / 'again.pth').exists() and not (tmp_path / 'out.pth').exists()


# ---------------------------------------------------------------- exact loading
def test_finetune_config_takes_the_converted_backbone_exactly(pretrained):
    """No missing or unexpected key; after init_weights every backbone tensor is the
    converted one (the blocks' tables the pre-trained shared one); the blocks reproduce
    the pre-training backbone; the classifier pools and normalises the patch tokens."""
    model, modules = _build_target(pretrained.converted)
    assert type(model.backbone).__name__ == 'BEiTViT'
    assert type(model.backbone).__module__.startswith('mmpretrain.')
    converted = torch.load(pretrained.converted, map_location='cpu',
                           weights_only=True)['state_dict']
    assert verify_pretrained_loading(model, str(pretrained.converted), modules) == {
        'backbone': len(converted)}
    model.init_weights()
    loaded = model.backbone.state_dict()
    assert set(loaded) == {k[len('backbone.'):] for k in converted}
    for key, value in loaded.items():
        assert torch.equal(value, converted[f'backbone.{key}']), key
    for i in range(TINY_DEPTH):
        assert torch.equal(loaded[f'layers.{i}.attn.relative_position_bias_table'],
                           pretrained.backbone[SHARED_TABLE])
    assert all(p.requires_grad for p in model.backbone.parameters())

    # Same computation: the pre-training backbone without its final norm (shared bias)
    # and the fine-tuning one's raw tokens (per-block biases) agree, and its output is
    # LayerNorm(mean patch token) with ln2's initial values.
    images = torch.randn(2, 3, 28, 28)
    pre, fine = pretrained.model.backbone, model.backbone
    pre.eval()
    fine.eval()
    try:
        pre.final_norm, fine.out_type = False, 'raw'
        with torch.no_grad():
            expected = pre(images, None)[-1]
            tokens = fine(images)[-1]
    finally:
        pre.final_norm, fine.out_type = True, 'avg_featmap'
    torch.testing.assert_close(tokens, expected)
    with torch.no_grad():
        pooled = fine(images)[-1]
    torch.testing.assert_close(
        pooled, F.layer_norm(expected[:, 1:].mean(1), (TINY_WIDTH, ), eps=1e-6))
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 28, 28), mode='tensor')
    assert logits.shape == (2, 1000)


def test_raw_checkpoint_is_refused_listing_the_mismatched_keys(pretrained):
    """Unconverted, the shared bias, mask_token and final norm fit nothing and the blocks'
    tables and ln2 are missing: the check stops and names them."""
    model, modules = _build_target(pretrained.raw)
    with pytest.raises(PretrainedLoadingError) as error:
        verify_pretrained_loading(model, str(pretrained.raw), modules)
    message = str(error.value)
    assert f'backbone: {2 * TINY_DEPTH + 2} keys missing from the checkpoint' in message
    for key in ('layers.0.attn.relative_position_bias_table',
                'layers.0.attn.relative_position_index'):
        assert key in message
    assert '5 checkpoint keys loaded by no module' in message
    for key in sorted(PRETRAIN_ONLY):
        assert repr(key) in message


# ------------------------------------------------------------- full-size config
def test_full_size_config_takes_the_converted_vit_b16_of_beit():
    """configs/baselines/beit_beit-base-p16_8xb256-coslr-400e_in1k.py's ViT-B/16,
    converted, has exactly the keys and shapes of the full-size fine-tuning backbone (both
    built on the meta device)."""
    cfg = Config.fromfile(str(REPO / 'configs' / 'baselines' /
                          'beit_beit-base-p16_8xb256-coslr-400e_in1k.py'))
    with torch.device('meta'), DefaultScope.overwrite_default_scope('hirl_mm'):
        pretrain = MODELS.build(cfg.model.backbone)
    with torch.device('meta'):
        target = _build_mmpretrain(Config.fromfile(str(FINETUNE)).model.backbone)
    assert type(target).__name__ == 'BEiTViT'
    state = beit_finetune_state({f'backbone.{k}': v
                                 for k, v in pretrain.state_dict().items()})
    target_keys = {k: v.shape for k, v in target.state_dict().items()}
    assert {k[len('backbone.'):]: v.shape for k, v in state.items()} == target_keys
    assert target_keys['layers.11.attn.relative_position_bias_table'] == (27 * 27 + 3, 12)


# ------------------------------------------------------------- config and protocol
def _base_entry(path: Path) -> str:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f'{path} has no _base_')


def test_finetune_config_documents_marks_and_sets_beits_protocol():
    """Inherits mmpretrain's BEiT fine-tuning config, names its source and the conversion,
    marks exactly the backbone, and has BEiT-base's fine-tuning values."""
    assert _base_entry(FINETUNE) == \
        'mmpretrain::beit/benchmarks/beit-base-p16_8xb128-coslr-100e_in1k.py'
    header = FINETUNE.read_text().split('_base_')[0]
    assert 'Source:' in header and 'Differences:' in header
    assert 'tools/model_converters/beit_backbone.py' in header
    cfg = Config.fromfile(str(FINETUNE))
    assert 'hirl_mm' in cfg.custom_imports['imports']
    assert not cfg.custom_imports['allow_failed_imports']
    backbone = cfg.model.backbone
    assert backbone.init_cfg == MARKER
    assert inject_pretrained(copy.deepcopy(cfg.model.to_dict()), 'x.pth') == ['backbone']
    assert (backbone.type, backbone.arch, backbone.patch_size, backbone.img_size) == (
        'BEiTViT', 'base', 16, 224)
    assert backbone.use_rel_pos_bias and not backbone.use_shared_rel_pos_bias
    assert not backbone.use_abs_pos_emb and backbone.out_type == 'avg_featmap'
    assert not backbone.get('final_norm', False) and backbone.drop_path_rate == 0.1
    assert cfg.model.head.in_channels == 768
    assert cfg.model.head.init_cfg == [dict(type='TruncNormal', layer='Linear', std=2e-5,
                                            bias=0.)]
    assert cfg.model.head.loss.label_smooth_val == 0.1
    assert cfg.model.train_cfg.augments == [dict(type='Mixup', alpha=0.8),
                                            dict(type='CutMix', alpha=1.0)]
    assert cfg.data_preprocessor.mean == [123.675, 116.28, 103.53]
    assert cfg.data_preprocessor.std == [58.395, 57.12, 57.375]
    assert cfg.train_cfg.max_epochs == 100 and cfg.train_dataloader.batch_size == 128
    assert cfg.auto_scale_lr.base_batch_size == 1024
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.weight_decay, optimizer.eps,
            tuple(optimizer.betas)) == ('AdamW', FT_LR, 0.05, 1e-8, (0.9, 0.999))
    assert cfg.optim_wrapper.get('clip_grad') is None
    assert cfg.optim_wrapper.constructor == 'LearningRateDecayOptimWrapperConstructor'
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == LAYER_DECAY
    warmup, cosine = cfg.param_scheduler
    assert (warmup.type, warmup.end, warmup.start_factor) == ('LinearLR', 20, 1e-9)
    assert (cosine.type, cosine.begin, cosine.end) == ('CosineAnnealingLR', 20, 100)
    assert cosine.eta_min_ratio * FT_LR == pytest.approx(1e-6)
    pipeline = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
    assert pipeline['RandomResizedCrop'].interpolation == 'bicubic'
    assert pipeline['RandAugment'].magnitude_level == 9
    assert pipeline['RandAugment'].magnitude_std == 0.5
    assert pipeline['RandomErasing'].erase_prob == 0.25
    test = cfg.val_dataloader.dataset.pipeline
    assert [t.type for t in test] == ['LoadImageFromFile', 'ResizeEdge', 'CenterCrop',
                                      'PackInputs']
    assert (test[1].scale, test[1].interpolation, test[2].crop_size) == (256, 'bicubic', 224)


def test_finetune_layer_decay_and_weight_decay_groups():
    """On the tiny model: lr scale 0.65^(L + 1 - depth), each block's relative position
    bias table at its block's depth and weight-decayed (as BEiT), no weight decay on 1-d
    parameters and the [CLS] token."""
    from mmengine.optim import build_optim_wrapper
    model_cfg = _shrink_finetune()
    model_cfg['backbone'].pop('init_cfg')
    model = _build_mmpretrain(model_cfg)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(model, Config.fromfile(str(FINETUNE)).optim_wrapper)
    groups = {g['param_name']: g for g in wrapper.optimizer.param_groups}
    assert set(groups) == {n for n, _ in model.named_parameters()}

    def expected_depth(name: str) -> int:
        if name.startswith(('backbone.patch_embed', 'backbone.cls_token')):
            return 0
        if name.startswith('backbone.layers.'):
            return int(name.split('.')[2]) + 1
        return TINY_DEPTH + 1  # backbone.ln2 (fc_norm), head

    for name, param in model.named_parameters():
        group = groups[name]
        scale = LAYER_DECAY**(TINY_DEPTH + 1 - expected_depth(name))
        assert group['lr'] == pytest.approx(FT_LR * scale), name
        no_decay = param.ndim == 1 or name == 'backbone.cls_token'
        assert group['weight_decay'] == (0. if no_decay else 0.05), name
    assert groups['backbone.layers.2.attn.relative_position_bias_table']['weight_decay'] \
        == 0.05
