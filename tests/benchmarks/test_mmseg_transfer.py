"""Semantic segmentation transfer through mmseg (configs/benchmarks/mmsegmentation), on CPU.

* Every config loads, inherits mmseg's, marks its backbone for ``--pretrained`` and builds a
  backbone whose keys are those of the mmpretrain backbone it is meant for.
* End to end (``slow``): a short HIRL pre-training of a full-width ResNet-50 writes a
  checkpoint; ``tools/train.py FCN-config --pretrained CKPT`` (a subprocess, as the benchmark
  scripts run it) fine-tunes on a tiny generated segmentation set, after checking that the
  weights fit exactly; a probe hook compares the initialised backbone with the checkpoint;
  the validation reports mIoU.
* The UPerNet ViT-B config takes a (tiny) mmpretrain ViT checkpoint exactly, and a
  checkpoint with a ResNetV1c deep stem is refused before any training.
"""
import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from PIL import Image

from hirl_mm.utils.pretrained import (PretrainedLoadingError, inject_pretrained,
                                      verify_pretrained_loading)
from tiny_setup import hirl_config, make_image_folder

REPO = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO / 'configs' / 'benchmarks' / 'mmsegmentation'
CONFIGS = sorted(CONFIG_DIR.glob('*.py'))
FCN_VOC = CONFIG_DIR / 'fcn_r50-d8_4xb4-20k_voc12aug-512x512.py'
UPERNET_VIT = CONFIG_DIR / 'upernet_vit-b16_8xb2-160k_ade20k-512x512.py'
# Config -> the mmseg config it inherits.
EXPECTED_BASES = {
    'fcn_r50-d8_4xb4-20k_voc12aug-512x512': 'fcn/fcn_r50-d8_4xb4-20k_voc12aug-512x512.py',
    'fcn_r50-d8_4xb2-40k_cityscapes-769x769': 'fcn/fcn_r50-d8_4xb2-40k_cityscapes-769x769.py',
    'upernet_r50_4xb4-160k_ade20k-512x512': 'upernet/upernet_r50_4xb4-160k_ade20k-512x512.py',
    'upernet_vit-b16_8xb2-160k_ade20k-512x512':
        'vit/vit_vit-b16_mln_upernet_8xb2-160k_ade20k-512x512.py',
}
MARKER = dict(type='Pretrained', checkpoint=None, prefix='backbone.')
IMAGENET_MEAN, IMAGENET_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
TIMEOUT = 600  # seconds for the fine-tuning subprocess on a loaded 2-core machine

SEG_CLASSES = ('background', 'square', 'disc')
SEG_SIZE = 64
FINETUNE_ITERS = 3

# Imported by the fine-tuning config (custom_imports): records, before the first iteration,
# how the initialised backbone compares with the checkpoint's backbone.* weights.
PROBE_MODULE = '''
import json

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner.checkpoint import _load_checkpoint_with_prefix


@HOOKS.register_module(force=True)
class PretrainedProbeHook(Hook):
    def __init__(self, checkpoint, out_file):
        self.checkpoint = checkpoint
        self.out_file = out_file

    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        own = model.backbone.state_dict()
        ckpt = _load_checkpoint_with_prefix('backbone.', self.checkpoint, map_location='cpu')
        shared = sorted(set(own) & set(ckpt))
        with open(self.out_file, 'w') as f:
            json.dump(dict(
                missing=sorted(set(own) - set(ckpt)),
                unexpected=sorted(set(ckpt) - set(own)),
                different=[k for k in shared if not torch.equal(own[k].cpu(), ckpt[k])],
                num_tensors=len(own)), f)
'''

# Fine-tuning config: the shipped FCN config, with the tiny data set and a short schedule.
FINETUNE_CONFIG = '''
_base_ = {base!r}
custom_imports = dict(imports=['hirl_mm', 'mmseg_transfer_probe'], allow_failed_imports=False)
crop_size = ({size}, {size})
num_classes = {num_classes}
metainfo = dict(classes={classes!r}, palette=[[0, 0, 0], [255, 0, 0], [0, 255, 0]])
model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(num_classes=num_classes),
    auxiliary_head=dict(num_classes=num_classes))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=crop_size, ratio_range=(1.0, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
dataset = dict(
    type='BaseSegDataset', data_root={data_root!r}, metainfo=metainfo,
    data_prefix=dict(img_path='images', seg_map_path='labels'),
    img_suffix='.png', seg_map_suffix='.png')
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, pipeline=train_pipeline, **dataset))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(_delete_=True, pipeline=test_pipeline, **dataset))
test_dataloader = val_dataloader
train_cfg = dict(max_iters={iters}, val_interval={iters})
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end={iters}, by_epoch=False)]
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=-1, save_last=False))  # 400 MB of disk writes saved
custom_hooks = [dict(type='PretrainedProbeHook', checkpoint={checkpoint!r},
                     out_file={probe_file!r})]
env_cfg = dict(cudnn_benchmark=False)
randomness = dict(seed=0)
'''


# ----------------------------------------------------------------------------- helpers
def _load_train_tool() -> ModuleType:
    """Import ``tools/train.py`` as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location('hirl_tools_train_mmseg',
                                                  REPO / 'tools' / 'train.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build_in_mmseg(cfg: dict) -> torch.nn.Module:
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmseg'):
        return MODELS.build(cfg)


def _save_backbone_checkpoint(backbone: torch.nn.Module, path: Path) -> Path:
    """Save as a pre-training run does: backbone.* next to other (unused) weights."""
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state['neck.fc.weight'] = torch.zeros(2, 2)
    torch.save(dict(state_dict=state, meta=dict()), path)
    return path


@pytest.fixture(scope='module')
def mmpretrain_resnet50_keys() -> set:
    from mmpretrain.models import ResNet
    return set(ResNet(depth=50).state_dict())


# ------------------------------------------------------------------------ fast: configs
def test_all_four_benchmarks_have_a_config():
    assert {p.stem for p in CONFIGS} == set(EXPECTED_BASES)


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: p.stem)
def test_config_inherits_mmseg_and_marks_the_backbone(path, mmpretrain_resnet50_keys):
    base = EXPECTED_BASES[path.stem]
    assert f"_base_ = 'mmseg::{base}'" in path.read_text()
    import mmseg
    assert (Path(mmseg.__file__).parent / '.mim' / 'configs' / base).is_file()

    cfg = Config.fromfile(str(path))
    assert cfg.default_scope == 'mmseg' and cfg.model.type == 'EncoderDecoder'
    assert cfg.model.pretrained is None  # else mmseg refuses init_cfg next to it
    assert cfg.model.backbone.init_cfg == MARKER
    preprocessor = cfg.model.data_preprocessor
    assert (preprocessor.mean, preprocessor.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert preprocessor.bgr_to_rgb
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[field].collate_fn.type == 'pseudo_collate', field
    assert cfg.val_evaluator.iou_metrics == ['mIoU']

    # tools/train.py --pretrained points the marker at the checkpoint.
    model_cfg = copy.deepcopy(cfg.model)
    assert inject_pretrained(model_cfg, 'pretrain.pth') == ['backbone']
    assert model_cfg.backbone.init_cfg.checkpoint == 'pretrain.pth'

    backbone = _build_in_mmseg(cfg.model.backbone)
    assert backbone.init_cfg == MARKER
    keys = set(backbone.state_dict())
    if 'vit' in path.stem:
        from mmpretrain.models import VisionTransformer
        assert type(backbone) is VisionTransformer
        assert backbone.out_type == 'featmap' and tuple(backbone.out_indices) == (3, 5, 7, 11)
        # The keys of a pre-training ViT-B (at 224 pixels, [CLS] output, e.g. MoCo v3's).
        assert keys == set(VisionTransformer(arch='base', img_size=224).state_dict())
    else:
        assert not backbone.deep_stem and not backbone.norm_eval
        assert isinstance(backbone.bn1, torch.nn.SyncBatchNorm)
        assert keys == mmpretrain_resnet50_keys
        if 'fcn' in path.stem:  # D8: dilated res4/res5, output stride 8
            assert cfg.model.backbone.dilations == (1, 1, 2, 4)
            assert cfg.model.backbone.strides == (1, 2, 1, 1)
            assert backbone.layer4[0].conv2.dilation == (2, 2)  # contract_dilation
            assert backbone.layer4[1].conv2.dilation == (4, 4)


# ------------------------------------------------------------- ViT and refusal (fast)
def test_upernet_vit_takes_a_mmpretrain_vit_checkpoint_exactly(tmp_path):
    """The ViT config at toy width (12 blocks, 32 channels): keys fit, weights load, the
    224-grid position embedding is resized to the segmentation grid, and a step runs."""
    from mmengine.model import revert_sync_batchnorm
    from mmpretrain.models import VisionTransformer
    arch = dict(embed_dims=32, num_layers=12, num_heads=2, feedforward_channels=64)
    pretrained = VisionTransformer(arch=arch, img_size=32, patch_size=16)  # [CLS] output
    ckpt = _save_backbone_checkpoint(pretrained, tmp_path / 'vit.pth')

    cfg = Config.fromfile(str(UPERNET_VIT))
    model_cfg = cfg.model
    model_cfg.backbone.update(arch=arch, img_size=(64, 64), drop_path_rate=0.)
    model_cfg.data_preprocessor.size = (64, 64)
    model_cfg.neck.update(in_channels=[32] * 4, out_channels=32)
    model_cfg.decode_head.update(in_channels=[32] * 4, channels=16, num_classes=3)
    model_cfg.auxiliary_head.update(in_channels=32, channels=8, num_classes=3)
    assert inject_pretrained(model_cfg, str(ckpt)) == ['backbone']
    model = revert_sync_batchnorm(_build_in_mmseg(model_cfg))

    assert verify_pretrained_loading(model, str(ckpt), ['backbone']) == {
        'backbone': len(pretrained.state_dict())}
    model.init_weights()
    loaded, source = model.backbone.state_dict(), pretrained.state_dict()
    for key, value in source.items():
        if key != 'pos_embed':
            assert torch.equal(loaded[key], value), key
    # The checkpoint's 2x2 patch grid of position embeddings, resized to 4x4.
    from mmpretrain.models.utils import resize_pos_embed
    assert loaded['pos_embed'].shape == (1, 1 + 16, 32)
    assert torch.allclose(loaded['pos_embed'], resize_pos_embed(
        source['pos_embed'], (2, 2), (4, 4), mode='bicubic', num_extra_tokens=1))

    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(64, 64), pad_shape=(64, 64)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 64, 64)))
        samples.append(sample)
    data = model.data_preprocessor(
        dict(inputs=[torch.randint(0, 255, (3, 64, 64), dtype=torch.uint8)] * 2,
             data_samples=samples), training=True)
    losses = model(**data, mode='loss')
    assert torch.isfinite(losses['decode.loss_ce']) and torch.isfinite(losses['aux.loss_ce'])

    # No weight decay on the position embedding, [CLS] token and LayerNorms (ln1 / ln2).
    from mmengine.optim import build_optim_wrapper
    with DefaultScope.overwrite_default_scope('mmseg'):
        optimizer = build_optim_wrapper(model, cfg.optim_wrapper).optimizer
    decay = {id(p): g['weight_decay'] for g in optimizer.param_groups for p in g['params']}
    for name, param in model.named_parameters():
        no_decay = name in ('backbone.pos_embed', 'backbone.cls_token') or '.ln' in name
        assert decay[id(param)] == (0. if no_decay else 0.01), name


def test_a_deep_stem_checkpoint_is_refused_before_training(tmp_path, monkeypatch):
    """tools/train.py --pretrained with a ResNetV1c checkpoint (stem.* instead of conv1/bn1)
    stops with the missing and unexpected keys listed, before any iteration."""
    from mmseg.models.backbones import ResNetV1c
    ckpt = _save_backbone_checkpoint(ResNetV1c(depth=50), tmp_path / 'v1c.pth')
    train = _load_train_tool()
    monkeypatch.setenv('LOCAL_RANK', '0')  # main() would export it into this process
    with pytest.raises(PretrainedLoadingError) as error:
        train.main([str(FCN_VOC), '--pretrained', str(ckpt), '--work-dir',
                    str(tmp_path / 'work')])
    message = str(error.value)
    assert "'bn1.weight'" in message  # missing from the checkpoint (stem conv1/bn1)
    assert "'stem.0.weight'" in message  # loaded by no module
    assert not list((tmp_path / 'work').rglob('*.pth'))


# ---------------------------------------------------------------- end to end (slow)
def _make_seg_dataset(root: Path, num_images: int = 4, seed: int = 0) -> Path:
    """``root/images/*.png`` (RGB) and ``root/labels/*.png`` (class indices): a red square
    (class 1) and a green disc (class 2) at random places on a dark noisy background."""
    rng = np.random.default_rng(seed)
    (root / 'images').mkdir(parents=True)
    (root / 'labels').mkdir()
    yy, xx = np.mgrid[:SEG_SIZE, :SEG_SIZE]
    for i in range(num_images):
        img = rng.integers(0, 60, size=(SEG_SIZE, SEG_SIZE, 3))
        label = np.zeros((SEG_SIZE, SEG_SIZE), dtype=np.uint8)
        y, x = rng.integers(0, SEG_SIZE // 2, size=2)
        label[y:y + 24, x:x + 24] = 1
        cy, cx = rng.integers(12, SEG_SIZE - 12, size=2)
        label[(yy - cy) ** 2 + (xx - cx) ** 2 < 100] = 2
        img[label == 1, 0] += 180
        img[label == 2, 1] += 180
        Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(root / 'images' / f'{i}.png')
        Image.fromarray(label).save(root / 'labels' / f'{i}.png')
    return root


@pytest.fixture(scope='module')
def hirl_r50_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint of a 2-epoch HIRL-SimCLR pre-training of a full-width ResNet-50 on 8
    images (one clustering round, before epoch 2)."""
    tmp = tmp_path_factory.mktemp('hirl_r50')
    data_root = make_image_folder(tmp / 'images', per_class=2)
    cfg = hirl_config('SimCLR', data_root, tmp / 'work', max_epochs=2, warmup_epochs=1,
                      batch_size=8, num_clusters=(4, 2), checkpoint_interval=2)
    cfg['model']['backbone'] = dict(type='ResNet', depth=50)
    cfg['model']['neck']['in_channels'] = 2048
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see the fine-tuning's OMP_NUM_THREADS
    try:
        Runner.from_cfg(Config(cfg)).train()
    finally:
        torch.set_num_threads(threads)
    ckpt = tmp / 'work' / 'epoch_2.pth'
    state = torch.load(ckpt, map_location='cpu')['state_dict']
    assert int(state['prototypes.num_updates']) >= 1  # clustered at least once
    return ckpt


@pytest.mark.slow
def test_fcn_finetunes_from_a_hirl_checkpoint_and_reports_miou(hirl_r50_checkpoint,
                                                                tmp_path):
    data_root = _make_seg_dataset(tmp_path / 'seg')
    (tmp_path / 'mmseg_transfer_probe.py').write_text(PROBE_MODULE)
    probe_file = tmp_path / 'probe.json'
    config = tmp_path / 'fcn_tiny.py'
    config.write_text(FINETUNE_CONFIG.format(
        base=str(FCN_VOC), size=SEG_SIZE, num_classes=len(SEG_CLASSES), classes=SEG_CLASSES,
        data_root=str(data_root), iters=FINETUNE_ITERS, checkpoint=str(hirl_r50_checkpoint),
        probe_file=str(probe_file)))
    work_dir = tmp_path / 'work'
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (str(tmp_path), env.get('PYTHONPATH'))
                                        if p)
    # One thread: on a busy 2-core machine, two make each iteration 4-6x slower.
    env['OMP_NUM_THREADS'] = '1'
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'train.py'), str(config), '--work-dir',
         str(work_dir), '--pretrained', str(hirl_r50_checkpoint)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]

    # Exact loading: tools/train.py checked the keys, and the initialised backbone holds
    # the checkpoint's tensors, every one of them.
    probe = json.loads(probe_file.read_text())
    assert probe['missing'] == [] and probe['unexpected'] == []
    assert probe['different'] == []
    assert probe['num_tensors'] == 318  # ResNet-50: conv/bn of stem and 16 bottlenecks
    assert 'do not match exactly' not in log  # mmengine's own warning on partial loads

    # Training ran, and the validation computed mIoU as the real runs report it.
    assert f'Iter(train) [{FINETUNE_ITERS}/{FINETUNE_ITERS}]' in log
    assert 'decode.loss_ce' in log and 'aux.loss_ce' in log
    scalars = [json.loads(line) for path in work_dir.glob('*/vis_data/scalars.json')
               for line in path.read_text().splitlines()]
    val = [s for s in scalars if 'mIoU' in s]
    assert len(val) == 1 and val[0]['step'] == FINETUNE_ITERS
    assert 0.0 <= val[0]['mIoU'] <= 100.0 and 'aAcc' in val[0] and 'mAcc' in val[0]
    for name in SEG_CLASSES:  # the per-class IoU table
        assert name in log
