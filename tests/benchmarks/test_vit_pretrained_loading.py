"""DINO / iBOT teacher backbones in the ViT-B/16 downstream configs, on CPU (fast).

* A tiny DINO and a tiny iBOT (configs/study/{dino,ibot}_tiny-vit_fashion-mnist.py)
  are built, their student and teacher made to differ (the student perturbed, then one
  real cosine-EMA step), and saved as mmengine's runner saves them. The converter
  (tools/model_converters/teacher_backbone.py) writes the teacher's backbone as
  ``backbone.*`` without iBOT's ``mask_token``.
* That checkpoint loads key for key (no missing, no unexpected key:
  ``verify_pretrained_loading``) into the ViT-B/16 linear-probe and fine-tuning configs
  (configs/benchmarks/classification/imagenet/vit-base-p16_*), the mmdet Cascade Mask R-CNN
  ViT config and the mmseg UPerNet ViT config, each shrunk to the tiny ViT; after
  ``init_weights()`` every backbone tensor equals the teacher's (not the student's); the
  position embedding is compared after resizing where the patch grid differs. The KNN
  config's embedding is the teacher's [CLS] token.
* A raw DINO / iBOT checkpoint is refused (its ``backbone.*`` is the student; DINO's would
  fit key for key), with a message naming the converter.
* The full-size configs take the ViT-B/16 of dino_vit-b16.py / ibot_vit-b16.py key for key
  (built on the meta device, no memory).
* The fine-tuning config's layer-wise lr decay: scales 0.65^(L + 1 - depth), lower for
  earlier layers, the reference's weight-decay exemptions, warm-up and cosine to
  1e-6 x scale.
"""
import ast
import copy
import importlib.util
import math
from pathlib import Path
from types import ModuleType
from typing import Dict, NamedTuple, Tuple

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.registry import DefaultScope
from mmpretrain.models.utils import resize_pos_embed

from hirl_mm.evaluation.feature_model import build_feature_model, load_backbone_weights
from hirl_mm.models.utils.embedding import backbone_embedding
from hirl_mm.registry import MODELS
from hirl_mm.utils.pretrained import (PretrainedLoadingError, inject_pretrained,
                                      verify_pretrained_loading)
from hirl_mm.utils.teacher_backbone import TEACHER_BACKBONE_PREFIX

REPO = Path(__file__).resolve().parents[2]
STUDY = REPO / 'configs' / 'study'
BASELINES = REPO / 'configs' / 'baselines'
CLS_DIR = REPO / 'configs' / 'benchmarks' / 'classification'
LINEAR = CLS_DIR / 'imagenet' / 'vit-base-p16_linear-8xb128-coslr-100e_in1k.py'
FINETUNE = CLS_DIR / 'imagenet' / 'vit-base-p16_ft-8xb128-coslr-100e_in1k.py'
KNN = CLS_DIR / 'knn' / 'knn_imagenet_vit-b16.py'
MMDET_VIT = REPO / 'configs/benchmarks/mmdetection/cascade-mask-rcnn_vit-b-fpn_coco.py'
MMSEG_VIT = REPO / ('configs/benchmarks/mmsegmentation/'
                    'upernet_vit-b16_8xb2-160k_ade20k-512x512.py')
CONVERTER = REPO / 'tools' / 'model_converters' / 'teacher_backbone.py'
MARKER = dict(type='Pretrained', checkpoint=None, prefix='backbone.')

# The ViT of the tiny pre-training configs: 28-pixel images, patch 4 -> a 7 x 7 grid.
TINY_ARCH = dict(embed_dims=64, num_layers=4, num_heads=4, feedforward_channels=256)
TINY_WIDTH, TINY_DEPTH, TINY_PATCH, PRETRAIN_GRID = 64, 4, 4, (7, 7)
LAYER_DECAY, FT_LR, FT_MIN_LR = 0.65, 4e-3, 1e-6

pytestmark = pytest.mark.usefixtures('single_thread')


class Pretrained(NamedTuple):
    """A tiny DINO / iBOT run: its raw and converted checkpoints, and the two backbones."""

    algorithm: str
    model: torch.nn.Module
    raw: Path
    converted: Path
    teacher: Dict[str, torch.Tensor]  # teacher backbone tensors, mask_token dropped
    student: Dict[str, torch.Tensor]  # student backbone tensors, mask_token dropped


# ----------------------------------------------------------------------------- helpers
def _load_tool(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f'vit_tool_{path.stem}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(model_cfg: dict, scope: str) -> torch.nn.Module:
    """Build a model in the registry of ``scope`` (mmpretrain, mmdet or mmseg)."""
    if scope == 'mmdet':
        from mmdet.registry import MODELS as registry
        from mmdet.utils import register_all_modules
        register_all_modules(init_default_scope=False)
    elif scope == 'mmseg':
        from mmseg.registry import MODELS as registry
        from mmseg.utils import register_all_modules
        register_all_modules(init_default_scope=False)
    else:
        from mmpretrain.registry import MODELS as registry
    with DefaultScope.overwrite_default_scope(scope):
        return registry.build(model_cfg)


def _diverge(model: torch.nn.Module) -> None:
    """Make the teacher differ from the student in every backbone tensor.

    The student is perturbed, the teacher takes it (CosineEMA's first update copies), the
    student is perturbed again and the teacher makes one real EMA step towards it:
    teacher = (1 - m) s1 + m s2 with m ~ 0.004, the student is s2.
    """
    hub = MessageHub.get_current_instance()
    previous = hub.get_info('max_iters')
    hub.update_info('max_iters', 100)  # CosineEMA's momentum schedule reads it
    generator = torch.Generator().manual_seed(0)
    try:
        with torch.no_grad():
            for _ in range(2):
                for param in model.backbone.parameters():
                    param.add_(0.1 * torch.randn(param.shape, generator=generator))
                model.update_teacher()
    finally:
        if previous is None:
            hub.pop_info('max_iters')
        else:
            hub.update_info('max_iters', previous)


def _backbone_tensors(state: Dict[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    return {k[len(prefix):]: v.clone() for k, v in state.items()
            if k.startswith(prefix) and k[len(prefix):] != 'mask_token'}


def _shrink_linear() -> Tuple[dict, str]:
    cfg = Config.fromfile(str(LINEAR))
    cfg.model.backbone.update(arch=TINY_ARCH, img_size=28, patch_size=TINY_PATCH,
                              frozen_stages=TINY_DEPTH)
    cfg.model.head.in_channels = 2 * TINY_WIDTH  # [CLS] ++ mean patch token
    return dict(cfg.model, data_preprocessor=cfg.data_preprocessor), 'mmpretrain'


def _shrink_finetune() -> Tuple[dict, str]:
    cfg = Config.fromfile(str(FINETUNE))
    cfg.model.backbone.update(arch=TINY_ARCH, img_size=28, patch_size=TINY_PATCH)
    cfg.model.head.in_channels = TINY_WIDTH
    return dict(cfg.model, data_preprocessor=cfg.data_preprocessor), 'mmpretrain'


def _shrink_mmdet() -> Tuple[dict, str]:
    """32-pixel inputs: an 8 x 8 grid, the 7 x 7 position embedding is resized."""
    cfg = Config.fromfile(str(MMDET_VIT))
    cfg.model.backbone.update(arch=TINY_ARCH, img_size=32, patch_size=TINY_PATCH,
                              out_indices=(0, 1, 2, 3))
    cfg.model.neck[0].update(in_channels=[TINY_WIDTH] * 4, out_channels=TINY_WIDTH)
    cfg.model.neck[1].update(in_channels=[TINY_WIDTH] * 4)
    return cfg.model, 'mmdet'


def _shrink_mmseg() -> Tuple[dict, str]:
    """32-pixel crops: an 8 x 8 grid, the 7 x 7 position embedding is resized."""
    cfg = Config.fromfile(str(MMSEG_VIT))
    model = cfg.model
    model.backbone.update(arch=TINY_ARCH, img_size=(32, 32), patch_size=TINY_PATCH,
                          out_indices=(0, 1, 2, 3), drop_path_rate=0.)
    model.data_preprocessor.size = (32, 32)
    model.neck.update(in_channels=[TINY_WIDTH] * 4, out_channels=TINY_WIDTH)
    model.decode_head.update(in_channels=[TINY_WIDTH] * 4, channels=16, num_classes=3)
    model.auxiliary_head.update(in_channels=TINY_WIDTH, channels=8, num_classes=3)
    return model, 'mmseg'


TARGETS = {'linear': _shrink_linear, 'finetune': _shrink_finetune, 'mmdet': _shrink_mmdet,
           'mmseg': _shrink_mmseg}


def _build_target(name: str, checkpoint: Path) -> Tuple[torch.nn.Module, list]:
    """A target config shrunk to the tiny ViT, its marker pointed at ``checkpoint``."""
    model_cfg, scope = TARGETS[name]()
    assert model_cfg['backbone']['init_cfg'] == MARKER
    modules = inject_pretrained(model_cfg, str(checkpoint))
    assert modules == ['backbone']
    return _build(model_cfg, scope), modules


def _assert_backbone_equals(backbone: torch.nn.Module, reference: Dict[str, torch.Tensor],
                            grid: Tuple[int, int]) -> None:
    """Every tensor equals ``reference``'s; the position embedding resized to ``grid``."""
    loaded = backbone.state_dict()
    assert set(loaded) == set(reference)
    for key, value in reference.items():
        if key == 'pos_embed' and grid != PRETRAIN_GRID:
            expected = resize_pos_embed(value, PRETRAIN_GRID, grid,
                                        mode=backbone.interpolate_mode, num_extra_tokens=1)
            assert loaded[key].shape == (1, 1 + grid[0] * grid[1], TINY_WIDTH)
            torch.testing.assert_close(loaded[key], expected)
        else:
            assert torch.equal(loaded[key], value), key


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope='module', params=['dino', 'ibot'])
def pretrained(request, tmp_path_factory) -> Pretrained:
    """A tiny DINO / iBOT, teacher != student, saved and converted."""
    algorithm = request.param
    cfg = Config.fromfile(str(STUDY / f'{algorithm}_tiny-vit_fashion-mnist.py'))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'hirl_mm')):
        model = MODELS.build(cfg.model)
    model.init_weights()
    _diverge(model)
    folder = tmp_path_factory.mktemp(f'{algorithm}_ckpt')
    raw = folder / 'epoch_1.pth'
    torch.save(dict(state_dict=model.state_dict(),
                    meta=dict(epoch=1, iter=2, cfg=cfg.pretty_text)), raw)
    converted = folder / 'teacher_backbone.pth'
    assert _load_tool(CONVERTER).main([str(raw), str(converted)]) == 0
    state = model.state_dict()
    return Pretrained(algorithm, model, raw, converted,
                      teacher=_backbone_tensors(state, TEACHER_BACKBONE_PREFIX),
                      student=_backbone_tensors(state, 'backbone.'))


# ------------------------------------------------------------------------ conversion
def test_converter_writes_the_teacher_backbone_without_mask_token(pretrained):
    """``backbone.*`` = the teacher's backbone, every tensor unlike the student's."""
    raw = pretrained.model.state_dict()
    assert ('backbone.mask_token' in raw) == (pretrained.algorithm == 'ibot')
    loaded = torch.load(pretrained.converted, map_location='cpu', weights_only=True)
    state = loaded['state_dict']
    assert set(state) == {f'backbone.{k}' for k in pretrained.teacher}
    assert 'backbone.mask_token' not in state
    for key, value in pretrained.teacher.items():
        assert torch.equal(state[f'backbone.{key}'], value), key
        assert not torch.equal(value, pretrained.student[key]), key  # they differ
    assert loaded['meta']['backbone'] == 'teacher' and loaded['meta']['epoch'] == 1
    assert loaded['meta']['source_checkpoint'] == str(pretrained.raw.resolve())


# ---------------------------------------------------------- exact loading, per target
@pytest.mark.parametrize('target', sorted(TARGETS))
def test_target_config_takes_the_teacher_backbone_exactly(pretrained, target):
    """No missing or unexpected key; after init_weights the backbone is the teacher."""
    model, modules = _build_target(target, pretrained.converted)
    assert type(model.backbone).__module__.startswith('mmpretrain.')  # not hirl_mm's
    assert verify_pretrained_loading(model, str(pretrained.converted), modules) == {
        'backbone': len(pretrained.teacher)}
    model.init_weights()
    grid = PRETRAIN_GRID if target in ('linear', 'finetune') else (8, 8)
    _assert_backbone_equals(model.backbone, pretrained.teacher, grid)
    if target == 'linear':  # the probe trains the head only
        assert not any(p.requires_grad for p in model.backbone.parameters())
        assert all(p.requires_grad for p in model.head.parameters())
    if target == 'finetune':  # every layer trains, on the [CLS] token
        assert all(p.requires_grad for p in model.backbone.parameters())
        assert model.backbone.out_type == 'cls_token'
    if target in ('linear', 'finetune'):
        logits = model(torch.randn(2, 3, 28, 28), mode='tensor')
        assert logits.shape == (2, 1000)


def test_knn_config_embeds_with_the_teachers_cls_token(pretrained):
    """knn.py's model from the KNN config: the teacher's weights, its [CLS] embedding."""
    cfg = Config.fromfile(str(KNN))
    cfg.model.backbone.update(arch=TINY_ARCH, img_size=28, patch_size=TINY_PATCH)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = build_feature_model(cfg)
    assert load_backbone_weights(model, str(pretrained.converted)) == len(pretrained.teacher)
    _assert_backbone_equals(model.backbone, pretrained.teacher, PRETRAIN_GRID)
    model.eval()
    teacher = pretrained.model.teacher.module[0]
    teacher.eval()  # (mmpretrain's BaseBackbone.train returns None, not the module)
    images = torch.randn(3, 3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model.embed(images), backbone_embedding(teacher(images)))


# ------------------------------------------------------------- raw checkpoints
def test_raw_checkpoint_is_refused_naming_the_converter(pretrained):
    """Fed unconverted, a DINO / iBOT checkpoint is refused before anything loads: its
    ``backbone.*`` is the student (DINO's would even fit key for key), the papers evaluate
    the teacher; the message names the converter."""
    model, modules = _build_target('linear', pretrained.raw)
    with pytest.raises(PretrainedLoadingError) as error:
        verify_pretrained_loading(model, str(pretrained.raw), modules)
    message = str(error.value)
    assert 'student' in message and 'tools/model_converters/teacher_backbone.py' in message


# ------------------------------------------------------------- full-size configs
def _full_size_backbone(path: Path, scope: str) -> torch.nn.Module:
    cfg = Config.fromfile(str(path))
    with torch.device('meta'):
        return _build(cfg.model.backbone, scope)


def test_full_size_configs_take_the_vit_b16_of_dino_and_ibot():
    """The configured ViT-B/16s have exactly the keys and shapes of the pre-training ViT
    (the position embedding aside, resized on loading), iBOT's minus its mask token."""
    with torch.device('meta'), DefaultScope.overwrite_default_scope('hirl_mm'):
        pretrain = {name: MODELS.build(Config.fromfile(
            str(BASELINES / f'{name}_vit-base-p16_8xb128-amp-coslr-400e_in1k.py')).model.backbone)
            for name in ('dino', 'ibot')}
    dino_keys = {k: v.shape for k, v in pretrain['dino'].state_dict().items()}
    ibot_keys = {k: v.shape for k, v in pretrain['ibot'].state_dict().items()}
    assert ibot_keys == dict(dino_keys, mask_token=torch.Size([1, 1, 768]))
    assert dino_keys['pos_embed'] == (1, 1 + 14 * 14, 768)

    targets = {LINEAR: 'mmpretrain', FINETUNE: 'mmpretrain', KNN: 'mmpretrain',
               MMDET_VIT: 'mmdet', MMSEG_VIT: 'mmseg'}
    for path, scope in targets.items():
        backbone = _full_size_backbone(path, scope)
        assert type(backbone).__name__ == 'VisionTransformer', path
        keys = {k: v.shape for k, v in backbone.state_dict().items()}
        assert set(keys) == set(dino_keys), path
        for key, shape in keys.items():
            if key != 'pos_embed':
                assert shape == dino_keys[key], (path, key)
        grid = 32 if path == MMSEG_VIT else 14  # 512-pixel crops for segmentation
        assert keys['pos_embed'] == (1, 1 + grid * grid, 768), path


# ------------------------------------------------------------- configs and protocol
def _base_entry(path: Path) -> str:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f'{path} has no _base_')


@pytest.mark.parametrize('path', [LINEAR, FINETUNE, KNN], ids=lambda p: p.stem)
def test_vit_classification_configs_document_and_mark(path):
    """Each config inherits mmpretrain's, names its source and the conversion step, and
    (training configs) marks exactly the backbone for ``--pretrained``."""
    assert _base_entry(path).startswith('mmpretrain::')
    header = path.read_text().split('_base_')[0]
    assert 'Source:' in header and 'Differences:' in header
    assert 'tools/model_converters/teacher_backbone.py' in header
    cfg = Config.fromfile(str(path))
    assert 'hirl_mm' in cfg.custom_imports['imports']
    backbone = cfg.model.backbone
    assert (backbone.type, backbone.arch, backbone.patch_size, backbone.img_size) == (
        'VisionTransformer', 'b', 16, 224)
    # The probe reads all final-norm tokens ([CLS] ++ mean patch, as DINO / iBOT for ViT-B).
    expected_out = 'raw' if path == LINEAR else 'cls_token'
    assert backbone.out_type == expected_out and backbone.final_norm
    if path == LINEAR:
        assert cfg.model.neck.type == 'ClsAvgPoolNeck' and cfg.model.head.in_channels == 1536
    assert cfg.data_preprocessor.mean == [123.675, 116.28, 103.53]
    assert cfg.data_preprocessor.std == [58.395, 57.12, 57.375]
    if path == KNN:
        assert cfg.knn_eval.ks == [10, 20, 100, 200] and cfg.knn_eval.temperature == 0.07
        for role, split in (('memory', 'train'), ('query', 'val')):
            dataset = cfg.knn_eval[role]
            assert dataset.split == split
            assert [t.type for t in dataset.pipeline] == [
                'LoadImageFromFile', 'ResizeEdge', 'CenterCrop', 'PackInputs']
            assert dataset.pipeline[1].scale == 256
            assert dataset.pipeline[1].interpolation == 'bicubic'
            assert dataset.pipeline[2].crop_size == 224
        return
    assert backbone.init_cfg == MARKER
    assert inject_pretrained(copy.deepcopy(cfg.model.to_dict()), 'x.pth') == ['backbone']
    assert cfg.train_cfg.max_epochs == 100 and cfg.train_dataloader.batch_size == 128
    assert cfg.auto_scale_lr.base_batch_size == 1024
    optimizer = cfg.optim_wrapper.optimizer
    if path == LINEAR:
        assert backbone.frozen_stages == 12 and backbone.drop_path_rate == 0
        assert (optimizer.type, optimizer.lr, optimizer.momentum, optimizer.weight_decay) \
            == ('SGD', 0.001 * 1024 / 256, 0.9, 0)
        assert [s.type for s in cfg.param_scheduler] == ['CosineAnnealingLR']
        assert cfg.param_scheduler[0].T_max == 100 and cfg.param_scheduler[0].eta_min == 0
        assert cfg.model.head.init_cfg == dict(type='Normal', std=0.01, layer='Linear')
        assert cfg.val_dataloader.dataset.pipeline[1].interpolation == 'bicubic'
    else:
        assert backbone.drop_path_rate == 0.1 and backbone.get('frozen_stages', -1) == -1
        assert (optimizer.type, optimizer.lr, optimizer.weight_decay) == ('AdamW', FT_LR, 0.05)
        assert cfg.optim_wrapper.constructor == 'LearningRateDecayOptimWrapperConstructor'
        assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == LAYER_DECAY
        assert cfg.model.train_cfg.augments == [dict(type='Mixup', alpha=0.8),
                                                dict(type='CutMix', alpha=1.0)]
        assert cfg.model.head.loss.label_smooth_val == 0.1
        pipeline = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
        assert pipeline['RandomResizedCrop'].interpolation == 'bicubic'
        assert pipeline['RandAugment'].magnitude_level == 9
        assert pipeline['RandAugment'].magnitude_std == 0.5
        assert pipeline['RandomErasing'].erase_prob == 0.25
        assert cfg.val_dataloader.dataset.pipeline[1].interpolation == 'bilinear'


def test_finetune_layer_decay_lowers_the_lr_of_earlier_layers():
    """mmpretrain's layer-decay constructor on the tiny ViT of the fine-tuning config:
    scale 0.65^(L + 1 - depth) (embeddings 0.65^5, block i 0.65^(4 - i), final norm and
    head 1), no weight decay on 1-d parameters, [CLS] token and position embedding; the
    lr warms up over 20 epochs, then each group's lr decays to 1e-6 x its scale."""
    from mmengine.optim import build_optim_wrapper
    from mmpretrain.registry import PARAM_SCHEDULERS
    model_cfg, scope = _shrink_finetune()
    model_cfg['backbone'].pop('init_cfg')
    model = _build(model_cfg, scope)
    cfg = Config.fromfile(str(FINETUNE))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    groups = {g['param_name']: g for g in wrapper.optimizer.param_groups}
    assert set(groups) == {n for n, _ in model.named_parameters()}

    def expected_depth(name: str) -> int:
        if name.startswith(('backbone.patch_embed', 'backbone.cls_token',
                            'backbone.pos_embed')):
            return 0
        if name.startswith('backbone.layers.'):
            return int(name.split('.')[2]) + 1
        return TINY_DEPTH + 1  # backbone.ln1, head

    for name, param in model.named_parameters():
        group = groups[name]
        scale = LAYER_DECAY**(TINY_DEPTH + 1 - expected_depth(name))
        assert group['lr_scale'] == pytest.approx(scale), name
        assert group['lr'] == pytest.approx(FT_LR * scale), name
        no_decay = param.ndim == 1 or name in ('backbone.cls_token', 'backbone.pos_embed')
        assert group['weight_decay'] == (0. if no_decay else 0.05), name
    # Strictly decreasing lr from the head down to the embeddings.
    by_depth = {}
    for name in groups:
        by_depth.setdefault(expected_depth(name), set()).add(groups[name]['lr'])
    assert all(len(lrs) == 1 for lrs in by_depth.values())
    lrs = [by_depth[d].pop() for d in range(TINY_DEPTH + 2)]
    assert lrs == sorted(lrs) and len(set(lrs)) == len(lrs)

    # The schedule, 2 iterations per epoch: warm-up from ~0, peak at epoch 20, then the
    # reference's cosine to 1e-6 x scale (reached at the end of epoch 100).
    epoch_length, initial = 2, [g['lr'] for g in wrapper.optimizer.param_groups]
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=wrapper),
                                             default_args=dict(epoch_length=epoch_length))
                      for s in cfg.param_scheduler]
    trace = []
    for _ in range(100 * epoch_length):
        trace.append([g['lr'] for g in wrapper.optimizer.param_groups])
        for scheduler in schedulers:
            scheduler.step()
    assert max(trace[0]) <= 1e-9 * FT_LR * (1 + 1e-6)
    warmup, total = 20 * epoch_length, 100 * epoch_length
    for lr, start in zip(trace[warmup], initial):
        assert lr == pytest.approx(start)
    cosine = (1 + math.cos(math.pi * (total - warmup - 1) / (total - warmup))) / 2
    for lr, start in zip(trace[-1], initial):
        floor = start * FT_MIN_LR / FT_LR
        assert lr == pytest.approx(floor + (start - floor) * cosine, rel=1e-4)


# ------------------------------------------------------------------ MoCo v3 (HIRL)
@pytest.mark.parametrize('target', ['linear', 'mmdet'])
def test_hirl_mocov3_momentum_encoder_loads_into_the_vit_configs(target, tmp_path):
    """HIRL-MoCo v3's checkpoint: ``--source momentum`` writes the momentum encoder's ViT,
    which loads exactly (MoCoV3ViT has VisionTransformer's keys); ``backbone.*`` as it is
    (the online encoder, mmpretrain's convention) loads too."""
    cfg = Config.fromfile(str(REPO / 'configs/study/hirl-mocov3_tiny-vit_fashion-mnist.py'))
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('hirl_mm'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    with torch.no_grad():  # the momentum encoder differs from the online one
        for param in model.momentum_encoder.module[0].parameters():
            param.add_(0.1)
    raw = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)), raw)
    converted = tmp_path / 'momentum_backbone.pth'
    assert _load_tool(CONVERTER).main([str(raw), str(converted), '--source', 'momentum']) == 0
    momentum = _backbone_tensors(model.state_dict(), 'momentum_encoder.module.0.')
    for checkpoint, reference in ((converted, momentum),
                                  (raw, _backbone_tensors(model.state_dict(), 'backbone.'))):
        built, modules = _build_target(target, checkpoint)
        verify_pretrained_loading(built, str(checkpoint), modules)
        built.init_weights()
        _assert_backbone_equals(built.backbone, reference,
                                PRETRAIN_GRID if target == 'linear' else (8, 8))
