"""Detection transfer through mmdet (configs/benchmarks/mmdetection), on CPU.

* Every config loads, inherits mmdet's, marks exactly the modules that take the pre-trained
  weights (C4: backbone = res2-4 and the RoI head's shared head = res5) and keeps the
  transfer protocol's settings (pytorch-style ResNet, ImageNet RGB normalisation, SyncBN,
  nothing frozen, schedule).
* The ResNet configs take an mmpretrain ResNet-50 checkpoint key for key; a checkpoint with
  keys removed or of another architecture is refused; without ``--pretrained`` the marked
  modules cannot initialise at all. The ViT config takes a (tiny) mmpretrain ViT exactly
  and computes its losses.
* End to end (``slow``): a short HIRL pre-training of a full-width ResNet-50 writes a
  checkpoint; ``tools/train.py CONFIG --pretrained CKPT`` (a subprocess, as the benchmark
  scripts run it) fine-tunes Mask R-CNN R50-C4 on a tiny generated COCO-format set after
  checking that the weights fit exactly; a probe hook compares the initialised backbone
  and shared head with the checkpoint; the validation reports bbox and segm mAP.
"""
import ast
import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

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
CONFIG_DIR = REPO / 'configs' / 'benchmarks' / 'mmdetection'
CONFIGS = {p.stem: p for p in sorted(CONFIG_DIR.glob('*.py'))}
C4_1X, FPN_1X = 'mask-rcnn_r50-c4_1x_coco', 'mask-rcnn_r50_fpn_1x_coco'
VOC, VIT = 'faster-rcnn_r50-c4_voc0712', 'cascade-mask-rcnn_vit-b-fpn_coco'
# Config -> (the mmdet config it ends up inheriting, modules marked for the weights).
C4_MODULES = ['backbone', 'roi_head.shared_head']
EXPECTED = {
    C4_1X: ('mask_rcnn/mask-rcnn_r50-caffe-c4_1x_coco.py', C4_MODULES),
    'mask-rcnn_r50-c4_2x_coco': ('mask_rcnn/mask-rcnn_r50-caffe-c4_1x_coco.py', C4_MODULES),
    FPN_1X: ('mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', ['backbone']),
    'mask-rcnn_r50_fpn_2x_coco': ('mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', ['backbone']),
    VOC: ('pascal_voc/faster-rcnn_r50-caffe-c4_ms-18k_voc0712.py', C4_MODULES),
    VIT: ('cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py', ['backbone']),
}
RESNET_CONFIGS = [name for name in EXPECTED if name != VIT]
MARKER = dict(type='Pretrained', checkpoint=None, prefix='backbone.')
IMAGENET_MEAN, IMAGENET_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
TIMEOUT = 600  # seconds for the fine-tuning subprocess on a loaded 2-core machine

CLASSES = ('square', 'bar')
IMG_W, IMG_H = 128, 96
NUM_IMAGES = 4
BATCH = 2

# Imported by the fine-tuning config (custom_imports): before the first iteration, records
# how every module marked for the pre-trained weights compares with the checkpoint.
PROBE_MODULE = '''
import json

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner.checkpoint import _load_checkpoint_with_prefix


@HOOKS.register_module(force=True)
class DetPretrainedProbeHook(Hook):
    def __init__(self, checkpoint, modules, out_file):
        self.checkpoint = checkpoint
        self.modules = modules
        self.out_file = out_file

    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        ckpt = _load_checkpoint_with_prefix('backbone.', self.checkpoint, map_location='cpu')
        report = dict(taken=[], missing=[], differing=[], norm_types=[])
        for name in self.modules:
            module = model.get_submodule(name)
            for key, value in module.state_dict().items():
                if key not in ckpt:
                    report['missing'].append(f'{name}:{key}')
                    continue
                report['taken'].append(key)
                if not torch.equal(value, ckpt[key]):
                    report['differing'].append(f'{name}:{key}')
            report['norm_types'] += sorted({type(m).__name__ for m in module.modules()
                                            if 'Norm' in type(m).__name__})
        report['unexpected'] = sorted(set(ckpt) - set(report['taken']))
        with open(self.out_file, 'w') as f:
            json.dump(report, f)
'''


# ----------------------------------------------------------------------------- helpers
def _base_files(path: Path) -> List[str]:
    """The ``_base_`` entries of a config file, read without executing it."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
            value = ast.literal_eval(node.value)
            return [value] if isinstance(value, str) else list(value)
    return []


def _mmdet_bases(path: Path) -> List[str]:
    """Every ``mmdet::`` config that ``path`` inherits, through local bases too."""
    found = []
    for base in _base_files(path):
        if base.startswith('mmdet::'):
            found.append(base[len('mmdet::'):])
        elif '::' not in base:
            found += _mmdet_bases((path.parent / base).resolve())
    return found


def _build_detector(cfg: Config) -> torch.nn.Module:
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(cfg.model)


def _save_backbone_checkpoint(backbone: torch.nn.Module, path: Path,
                              drop: str = None) -> Path:
    """Save ``backbone`` as an SSL checkpoint would (``backbone.*`` next to other parts)."""
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()
             if drop is None or not k.startswith(drop)}
    state['neck.mlp.0.weight'] = torch.zeros(2, 2)  # not the backbone's: ignored
    torch.save(dict(state_dict=state, meta=dict()), path)
    return path


def _mmpretrain_model(cfg: dict) -> torch.nn.Module:
    """An mmpretrain backbone whose every tensor (norms and buffers too) is random, so
    that a module holding the same values can only have loaded them."""
    from mmpretrain.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmpretrain'):  # whatever ran before
        model = MODELS.build(cfg)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                value.copy_(torch.rand_like(value) + 0.5 if key.endswith('running_var')
                            else torch.randn_like(value))
            else:
                value.fill_(7)  # num_batches_tracked
    return model


def _assert_initialised_from(model: torch.nn.Module, modules: List[str],
                             reference: Dict[str, torch.Tensor]) -> int:
    """Every tensor of the marked modules equals the reference backbone's; returns count."""
    count = 0
    for name in modules:
        for key, value in model.get_submodule(name).state_dict().items():
            assert torch.equal(value, reference[key]), f'{name}: {key}'
            count += 1
    return count


@pytest.fixture(scope='module')
def resnet50(tmp_path_factory):
    """An mmpretrain ResNet-50 (random weights) and its checkpoint under ``backbone.``."""
    torch.manual_seed(0)
    backbone = _mmpretrain_model(dict(type='ResNet', depth=50))
    path = tmp_path_factory.mktemp('r50') / 'r50.pth'
    return backbone, _save_backbone_checkpoint(backbone, path)


# ------------------------------------------------------------------- configs (fast)
def test_every_config_is_known():
    assert set(CONFIGS) == set(EXPECTED)


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_config_inherits_mmdet_and_marks_the_pretrained_modules(name):
    cfg = Config.fromfile(str(CONFIGS[name]))
    base, modules = EXPECTED[name]
    assert _mmdet_bases(CONFIGS[name]) == [base]
    assert cfg.default_scope == 'mmdet'
    assert 'hirl_mm' in cfg.custom_imports['imports']  # reads hirl_mm checkpoints anywhere

    # Marked with no checkpoint: only --pretrained fills them in.
    model_cfg = copy.deepcopy(cfg.model.to_dict())
    assert inject_pretrained(model_cfg, 'ckpt.pth') == modules
    for module in modules:
        init_cfg = cfg.model
        for part in module.split('.'):
            init_cfg = init_cfg[part]
        assert init_cfg.init_cfg == MARKER

    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[field].collate_fn.type == 'pseudo_collate'  # images of different sizes
    if name != VIT:
        _check_resnet_protocol(cfg, c4=modules == C4_MODULES)


def _check_resnet_protocol(cfg: Config, c4: bool) -> None:
    """The settings that make an mmpretrain (pytorch-style) ResNet-50 transfer as intended."""
    preprocessor = cfg.model.data_preprocessor
    assert preprocessor.mean == IMAGENET_MEAN and preprocessor.std == IMAGENET_STD
    assert preprocessor.bgr_to_rgb is True
    backbone = cfg.model.backbone
    assert backbone.type == 'ResNet' and backbone.depth == 50
    assert backbone.style == 'pytorch' and backbone.frozen_stages == -1
    assert backbone.norm_cfg == dict(type='SyncBN', requires_grad=True)
    assert backbone.norm_eval is False
    if c4:
        assert backbone.num_stages == 3
        head = cfg.model.roi_head.shared_head
        assert head.type == 'ResLayer' and head.depth == 50 and head.stage == 3
        assert head.style == 'pytorch' and head.norm_eval is False
        assert head.norm_cfg == dict(type='SyncBN', requires_grad=True)
    else:
        assert backbone.get('num_stages', 4) == 4
        assert cfg.model.neck.norm_cfg.type == 'SyncBN'


@pytest.mark.parametrize('name,schedule', [
    (C4_1X, ('epochs', 12, [8, 11])), ('mask-rcnn_r50-c4_2x_coco', ('epochs', 24, [16, 22])),
    (FPN_1X, ('epochs', 12, [8, 11])), ('mask-rcnn_r50_fpn_2x_coco', ('epochs', 24, [16, 22])),
    (VOC, ('iters', 24000, [18000, 22000])), (VIT, ('epochs', 12, [8, 11]))])
def test_schedules_follow_the_reference_protocol(name, schedule):
    cfg = Config.fromfile(str(CONFIGS[name]))
    unit, length, milestones = schedule
    assert cfg.train_cfg[f'max_{unit}'] == length
    steps = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR']
    assert len(steps) == 1 and steps[0].milestones == milestones
    assert steps[0].end == length and steps[0].by_epoch is (unit == 'epochs')
    assert cfg.auto_scale_lr.base_batch_size == 16  # 8 GPUs x 2 images
    if '_2x_' in name:  # the same model and data as 1x
        one_x = Config.fromfile(str(CONFIGS[name.replace('_2x_', '_1x_')]))
        assert cfg.model == one_x.model and cfg.train_dataloader == one_x.train_dataloader
    if name == VOC:
        assert cfg.train_dataloader.dataset.ignore_keys == ['dataset_type']
        assert cfg.val_evaluator.iou_thrs[0] == 0.5 and len(cfg.val_evaluator.iou_thrs) == 10


VOC_XML = """<annotation><size><width>{w}</width><height>{h}</height><depth>3</depth></size>
<object><name>{name}</name><difficult>0</difficult>
<bndbox><xmin>8</xmin><ymin>8</ymin><xmax>60</xmax><ymax>50</ymax></bndbox></object>
</annotation>"""


def test_voc0712_training_set_concatenates_into_one_data_set(tmp_path):
    """VOC2007 + VOC2012 trainval build as one data set with one metainfo (classes)."""
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    for year, name in ((2007, 'dog'), (2012, 'cat')):
        folder = tmp_path / f'VOC{year}'
        for sub in ('JPEGImages', 'Annotations', 'ImageSets/Main'):
            (folder / sub).mkdir(parents=True)
        Image.new('RGB', (IMG_W, IMG_H)).save(folder / 'JPEGImages' / f'{year}_1.jpg')
        (folder / 'Annotations' / f'{year}_1.xml').write_text(
            VOC_XML.format(w=IMG_W, h=IMG_H, name=name))
        (folder / 'ImageSets' / 'Main' / 'trainval.txt').write_text(f'{year}_1\n')
    cfg = Config.fromfile(str(CONFIGS[VOC]))
    dataset_cfg = cfg.train_dataloader.dataset
    for part in dataset_cfg.datasets:
        part.data_root = str(tmp_path) + '/'
    with DefaultScope.overwrite_default_scope('mmdet'):
        dataset = DATASETS.build(dataset_cfg)
    assert len(dataset) == 2
    assert isinstance(dataset.metainfo, dict) and len(dataset.metainfo['classes']) == 20
    labels = [int(dataset[i]['data_samples'].gt_instances.labels[0]) for i in range(2)]
    assert [dataset.metainfo['classes'][k] for k in labels] == ['dog', 'cat']


# ------------------------------------------------------ exact loading (fast, in-process)
@pytest.mark.parametrize('name', [C4_1X, FPN_1X, VOC])
def test_resnet_config_takes_an_mmpretrain_resnet50_exactly(name, resnet50):
    backbone, ckpt = resnet50
    cfg = Config.fromfile(str(CONFIGS[name]))
    modules = inject_pretrained(cfg.model, str(ckpt))
    model = _build_detector(cfg)
    loaded = verify_pretrained_loading(model, str(ckpt), modules)
    reference = backbone.state_dict()
    assert sum(loaded.values()) == len(reference)
    if modules == C4_MODULES:  # res5 lives in the RoI head
        assert not hasattr(model.backbone, 'layer4')
        assert loaded['roi_head.shared_head'] == len(
            [k for k in reference if k.startswith('layer4.')])
    model.init_weights()
    assert _assert_initialised_from(model, modules, reference) == len(reference)


def test_mismatching_checkpoints_are_refused(resnet50, tmp_path):
    backbone, _ = resnet50
    model = _build_detector(Config.fromfile(str(CONFIGS[C4_1X])))
    modules = C4_MODULES
    # The markers hold checkpoint=None: a run without --pretrained stops when the weights
    # are initialised, it never trains from random weights.
    with pytest.raises(Exception):
        model.init_weights()

    # Keys removed: the last res5 block is missing for the shared head.
    cut = _save_backbone_checkpoint(backbone, tmp_path / 'cut.pth', drop='layer4.2.')
    with pytest.raises(PretrainedLoadingError, match=r'roi_head\.shared_head: \d+ keys '
                       r"missing from the checkpoint, e\.g\. \['layer4\.2\."):
        verify_pretrained_loading(model, str(cut), modules)

    # Another architecture (deep stem): missing and unexpected keys, both reported.
    v1c = _mmpretrain_model(dict(type='ResNetV1c', depth=50))
    deep = _save_backbone_checkpoint(v1c, tmp_path / 'v1c.pth')
    with pytest.raises(PretrainedLoadingError) as error:
        verify_pretrained_loading(model, str(deep), modules)
    # bn1.* and conv1.weight: the deep stem's stem.* instead.
    assert "backbone: 6 keys missing from the checkpoint, e.g. ['bn1." in str(error.value)
    assert "checkpoint keys loaded by no module, e.g. ['stem." in str(error.value)

    # A checkpoint without backbone.* weights at all.
    plain = tmp_path / 'plain.pth'
    torch.save(dict(state_dict=backbone.state_dict()), plain)
    with pytest.raises(PretrainedLoadingError, match='no weights under the prefix'):
        verify_pretrained_loading(model, str(plain), modules)


def test_vit_config_takes_an_mmpretrain_vit_exactly(tmp_path):
    """Cascade Mask R-CNN ViT + FPN at toy width: exact loading, then one training step."""
    arch = dict(embed_dims=32, num_layers=4, num_heads=2, feedforward_channels=64)
    torch.manual_seed(0)
    vit = _mmpretrain_model(dict(type='VisionTransformer', arch=arch, img_size=32,
                                 patch_size=16))
    ckpt = _save_backbone_checkpoint(vit, tmp_path / 'vit.pth')
    cfg = Config.fromfile(str(CONFIGS[VIT]))
    assert cfg.model.backbone.type == 'mmpretrain.VisionTransformer'
    assert cfg.model.backbone.arch == 'b' and cfg.model.backbone.patch_size == 16
    cfg.model.backbone.update(arch=arch, img_size=32, out_indices=(0, 1, 2, 3))
    cfg.model.neck[0].update(in_channels=[32] * 4, out_channels=32)
    cfg.model.neck[1].update(in_channels=[32] * 4)
    modules = inject_pretrained(cfg.model, str(ckpt))
    model = _build_detector(cfg)
    assert type(model.backbone).__module__.startswith('mmpretrain.')
    assert verify_pretrained_loading(model, str(ckpt), modules) == {
        'backbone': len(vit.state_dict())}
    model.init_weights()
    _assert_initialised_from(model, modules, vit.state_dict())

    # The FPN levels have the strides the RPN expects: one loss step goes through.
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData
    mask = np.zeros((1, IMG_H, IMG_W), np.uint8)
    mask[0, 10:50, 20:80] = 1
    sample = DetDataSample(metainfo=dict(img_shape=(IMG_H, IMG_W), ori_shape=(IMG_H, IMG_W),
                                         scale_factor=(1.0, 1.0)))
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[20., 10., 80., 50.]]),
                                       labels=torch.tensor([1]),
                                       masks=BitmapMasks(mask, IMG_H, IMG_W))
    image = torch.randint(0, 256, (3, IMG_H, IMG_W), dtype=torch.uint8)
    data = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]), True)
    feats = model.extract_feat(data['inputs'])
    assert [f.shape[-1] for f in feats] == [IMG_W // s for s in (4, 8, 16, 32, 64)]
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v.sum() if torch.is_tensor(v) else sum(x.sum() for x in v)
                for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.layers[0].ffn.layers[0][0].weight.grad is not None

    # A ViT pre-trained without the final norm is refused.
    no_norm = _mmpretrain_model(dict(type='VisionTransformer', arch=arch, img_size=32,
                                     patch_size=16, final_norm=False))
    bad = _save_backbone_checkpoint(no_norm, tmp_path / 'no_norm.pth')
    with pytest.raises(PretrainedLoadingError, match=r"backbone: 2 keys missing .*'ln1\."):
        verify_pretrained_loading(model, str(bad), modules)


# ------------------------------------------------------------ end to end (slow, CPU)
def make_tiny_coco(root: Path, num_images: int = NUM_IMAGES, seed: int = 0) -> Path:
    """``root/images/*.png`` with 1-2 filled rectangles each (2 categories) and
    ``root/annotations.json`` in COCO format (boxes and polygon masks); returns ``root``."""
    rng = np.random.default_rng(seed)
    (root / 'images').mkdir(parents=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        pixels = rng.integers(0, 50, size=(IMG_H, IMG_W, 3))
        for k in range(1 + image_id % 2):
            category = 1 + (image_id + k) % 2  # 1: square, 2: bar
            w, h = (32, 32) if category == 1 else (48, 16)
            x = int(rng.integers(0, IMG_W // 2 - w // 2)) + k * (IMG_W // 2)
            y = int(rng.integers(0, IMG_H - h))
            pixels[y:y + h, x:x + w, category] = 220
            annotations.append(dict(
                id=len(annotations) + 1, image_id=image_id, category_id=category,
                bbox=[x, y, w, h], area=w * h, iscrowd=0,
                segmentation=[[x, y, x + w, y, x + w, y + h, x, y + h]]))
        name = f'{image_id:03d}.png'
        Image.fromarray(pixels.astype(np.uint8)).save(root / 'images' / name)
        images.append(dict(id=image_id, file_name=name, width=IMG_W, height=IMG_H))
    categories = [dict(id=i + 1, name=c, supercategory='shape') for i, c in enumerate(CLASSES)]
    (root / 'annotations.json').write_text(json.dumps(
        dict(images=images, annotations=annotations, categories=categories)))
    return root


def finetune_config(base: Path, data_root: Path, checkpoint: Path, modules: List[str],
                    probe_file: Path) -> str:
    """A config inheriting ``base`` that only shrinks data, schedule and sample numbers."""
    return f'''
_base_ = {str(base)!r}
custom_imports = dict(imports=['hirl_mm', 'hirl_det_probe'], allow_failed_imports=False)
data_root = {str(data_root) + '/'!r}
metainfo = dict(classes={CLASSES!r})
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=({IMG_W}, {IMG_H}), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=({IMG_W}, {IMG_H}), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
dataset = dict(type='CocoDataset', data_root=data_root, ann_file='annotations.json',
               data_prefix=dict(img='images/'), metainfo=metainfo)
train_dataloader = dict(batch_size={BATCH}, num_workers=0, persistent_workers=False,
                        dataset=dict(dataset, pipeline=train_pipeline))
val_dataloader = dict(batch_size={BATCH}, num_workers=0, persistent_workers=False,
                      dataset=dict(dataset, test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations.json')
test_evaluator = val_evaluator
model = dict(
    roi_head=dict(bbox_head=dict(num_classes=2), mask_head=dict(num_classes=2)),
    train_cfg=dict(rpn=dict(sampler=dict(num=64)),
                   rpn_proposal=dict(nms_pre=200, max_per_img=50),
                   rcnn=dict(sampler=dict(num=16))),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=50), rcnn=dict(max_per_img=20)))
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=-1, save_last=False),  # 170 MB each
                     visualization=dict(draw=False))
custom_hooks = [dict(type='DetPretrainedProbeHook', checkpoint={str(checkpoint)!r},
                     modules={modules!r}, out_file={str(probe_file)!r})]
randomness = dict(seed=0)
'''


@pytest.fixture(scope='module')
def hirl_r50_checkpoint(tmp_path_factory) -> Path:
    """A short HIRL-SimCLR pre-training of a full-width ResNet-50 (one clustering round)."""
    images = make_image_folder(tmp_path_factory.mktemp('pretrain_images'), per_class=2)
    work_dir = tmp_path_factory.mktemp('pretrain')
    cfg = hirl_config('SimCLR', images, work_dir, max_epochs=2, warmup_epochs=1,
                      batch_size=8, num_clusters=(4, 2))
    model = cfg['model']
    model['backbone'] = dict(type='ResNet', depth=50)
    model['neck']['in_channels'] = 2048
    runner = Runner.from_cfg(Config(cfg))
    runner.train()
    assert int(runner.model.prototypes.num_updates) == 1  # before epoch 2
    return work_dir / 'epoch_2.pth'


@pytest.mark.slow
def test_hirl_checkpoint_finetunes_mask_rcnn_through_tools_train(hirl_r50_checkpoint,
                                                                   tmp_path):
    ckpt = hirl_r50_checkpoint
    state = torch.load(ckpt, map_location='cpu')['state_dict']
    assert any(k.startswith('prototypes.') for k in state)  # a real HIRL checkpoint
    backbone_keys = {k[len('backbone.'):] for k in state if k.startswith('backbone.')}

    data_root = make_tiny_coco(tmp_path / 'coco')
    probe_dir = tmp_path / 'probe'
    probe_dir.mkdir()
    (probe_dir / 'hirl_det_probe.py').write_text(PROBE_MODULE)
    probe_file = tmp_path / 'probe.json'
    config = tmp_path / 'finetune.py'
    config.write_text(finetune_config(CONFIGS[C4_1X], data_root, ckpt, C4_MODULES,
                                      probe_file))
    work_dir = tmp_path / 'work'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(probe_dir), os.environ.get('PYTHONPATH')) if p))
    proc = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'train.py'), str(config), '--work-dir',
         str(work_dir), '--pretrained', str(ckpt)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]

    # tools/train.py checked the split before building anything else...
    assert (f'Pre-trained weights of {ckpt} fit exactly: backbone (258 tensors), '
            'roi_head.shared_head (60 tensors)') in log
    # ...and the initialised modules hold exactly the checkpoint's weights.
    probe = json.loads(probe_file.read_text())
    assert probe['missing'] == [] and probe['unexpected'] == []
    assert probe['differing'] == []
    assert sorted(probe['taken']) == sorted(backbone_keys)
    # The configs' SyncBN became plain BatchNorm in this one-process run (mmengine reverts
    # it when not distributed), in the backbone and in the shared head.
    assert probe['norm_types'] == ['_BatchNormXd', '_BatchNormXd']

    records = [json.loads(line) for line in
               next(work_dir.glob('*/vis_data/scalars.json')).read_text().splitlines()]
    train = [r for r in records if 'loss' in r]
    assert len(train) == NUM_IMAGES // BATCH
    assert all(np.isfinite(r['loss']) for r in train)
    assert all('loss_mask' in r and 'loss_rpn_cls' in r for r in train)
    metrics = [r for r in records if 'coco/bbox_mAP' in r]
    assert len(metrics) == 1
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50'):
        assert -1 <= metrics[0][key] <= 1, key
