"""iBOTMaskGenerator (iBOT, arXiv 2111.07832) and the DINO / iBOT multi-crop base configs."""
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.registry import DefaultScope
from mmengine.runner import set_random_seed

# Importing it imports hirl_mm, which registers (and mirrors into mmpretrain) its components.
from hirl_mm.datasets.transforms import iBOTMaskGenerator

CONFIGS = Path(__file__).parents[3] / 'configs' / '_base_' / 'datasets'
N = 14 * 14  # patches of a 224 crop at patch size 16


def _views(size=224, num=2, local=0):
    return [np.zeros((size, size, 3), np.uint8)] * num + [np.zeros((96, 96, 3), np.uint8)] * local


def _masks(gen, num_samples, seed=0, **view_kwargs):
    """(num_samples * num_masked_views, h, w) masks drawn under a seed."""
    set_random_seed(seed)
    return np.concatenate([gen(dict(img=_views(**view_kwargs)))['mask']
                           for _ in range(num_samples)])


def _is_one_rectangle(mask):
    ys, xs = np.nonzero(mask)
    return len(ys) > 0 and (np.ptp(ys) + 1) * (np.ptp(xs) + 1) == mask.sum()


def test_mask_shape_dtype_and_only_global_views():
    results = iBOTMaskGenerator()(dict(img=_views(local=10)))
    assert results['mask'].shape == (2, 14, 14) and results['mask'].dtype == np.bool_
    assert len(results['img']) == 12  # views are left as they are
    mask = iBOTMaskGenerator(num_masked_views=1)(dict(img=_views(size=192)))['mask']
    assert mask.shape == (1, 12, 12)


def test_released_recipe_masks_half_of_the_crops_at_ratio_0_1_to_0_5():
    counts = _masks(iBOTMaskGenerator(), 1000).sum(axis=(1, 2))
    assert 0.45 < np.mean(counts == 0) < 0.55  # pred_ratio 0 for half of the crops
    masked = counts[counts > 0]
    assert masked.max() <= int(0.5 * N)  # never above the largest target
    assert 0.25 < masked.mean() / N < 0.32  # ratio ~ U(0.1, 0.5), blocks end a bit short


def test_block_masks_never_exceed_the_target_and_come_close():
    target = 0.3 * N
    counts = _masks(iBOTMaskGenerator(pred_ratio=0.3, pred_ratio_var=0), 300).sum(axis=(1, 2))
    assert counts.max() <= target
    assert counts.mean() > 0.9 * target


def test_blocks_are_rectangles():
    gen = iBOTMaskGenerator()
    set_random_seed(0)
    for _ in range(200):
        mask = np.zeros((14, 14), bool)
        added = gen._add_block(mask, max_patches=40.0)
        assert added == mask.sum() <= 40
        assert added == 0 or _is_one_rectangle(mask)
    # A target of one minimal block's area: mostly a single block.
    masks = _masks(iBOTMaskGenerator(pred_ratio=16 / N, pred_ratio_var=0), 100)
    assert np.mean([_is_one_rectangle(m) for m in masks]) > 0.5


def test_rand_shape_masks_exactly_int_ratio_times_patches():
    gen = iBOTMaskGenerator(pred_ratio=0.3, pred_ratio_var=0, pred_shape='rand')
    masks = _masks(gen, 50)
    assert (masks.sum(axis=(1, 2)) == int(0.3 * N)).all()
    assert not (masks[0] == masks[1]).all()  # the two crops get different masks


def test_reproducible_under_a_seed():
    gen = iBOTMaskGenerator()
    assert (_masks(gen, 20, seed=3) == _masks(gen, 20, seed=3)).all()
    assert (_masks(gen, 20, seed=3) != _masks(gen, 20, seed=4)).any()


@pytest.mark.parametrize('kwargs,message', [
    (dict(pred_ratio=0.1, pred_ratio_var=0.2), r'pred_ratio_var must be in \[0, pred_ratio\]'),
    (dict(pred_ratio=(0.0, 0.3), pred_ratio_var=-0.1), r'pred_ratio_var must be in'),
    (dict(pred_ratio=0.8, pred_ratio_var=0.3), r'pred_ratio \+ pred_ratio_var must be <= 1'),
    (dict(pred_ratio=(0.0, 0.3), pred_ratio_var=(0.0, 0.1, 0.2)), 'one per pred_ratio'),
    (dict(pred_ratio=()), 'non-empty sequence'),
    (dict(pred_ratio=-0.1, pred_ratio_var=0), r'pred_ratio must be in \[0, 1\]'),
    (dict(pred_shape='grid'), "pred_shape must be one of .*'grid'"),
    (dict(pred_aspect_ratio=(3.0, 0.3)), 'pred_aspect_ratio must be'),
    (dict(patch_size=0), 'patch_size must be a positive int'),
    (dict(num_masked_views=0), 'num_masked_views must be a positive int'),
])
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        iBOTMaskGenerator(**kwargs)


def test_one_variance_applies_to_every_ratio_and_repr_lists_settings():
    gen = iBOTMaskGenerator(pred_ratio=(0.2, 0.3), pred_ratio_var=0.1, pred_shape='rand')
    assert gen.pred_ratio_var == (0.1, 0.1)
    text = repr(gen)
    for setting in ('patch_size=16', 'num_masked_views=2', 'pred_ratio=(0.2, 0.3)',
                    'pred_ratio_var=(0.1, 0.1)', 'pred_aspect_ratio=(0.3, ', "'rand'"):
        assert setting in text


def test_view_errors():
    with pytest.raises(ValueError, match='view size 100x100 is not divisible by patch_size 16'):
        iBOTMaskGenerator()(dict(img=_views(size=100)))
    with pytest.raises(ValueError, match='must share one size'):
        iBOTMaskGenerator()(dict(img=_views(num=1, local=1)))
    with pytest.raises(ValueError, match='masks 2 views but got 1'):
        iBOTMaskGenerator()(dict(img=_views(num=1)))


@pytest.mark.parametrize('name,global_scale,local_scale', [
    ('dino', (0.25, 1.0), (0.05, 0.25)), ('ibot', (0.32, 1.0), (0.05, 0.32))])
def test_base_config_recipe(name, global_scale, local_scale):
    cfg = Config.fromfile(str(CONFIGS / f'imagenet_{name}-multicrop.py'))
    multi_view = cfg.train_pipeline[1]
    assert multi_view['type'] == 'MultiView' and multi_view['num_views'] == [1, 1, 10]
    views = {k: {t['type']: t for t in v} for k, v in zip(('g1', 'g2', 'l'),
                                                            multi_view['transforms'])}
    for key, size, scale in (('g1', 224, global_scale), ('g2', 224, global_scale),
                             ('l', 96, local_scale)):
        crop = views[key]['RandomResizedCrop']
        assert (crop['scale'], tuple(crop['crop_ratio_range'])) == (size, scale)
        assert crop['interpolation'] == 'bicubic'
    blur = {k: v['GaussianBlur']['prob'] for k, v in views.items()}
    assert blur == dict(g1=1.0, g2=0.1, l=0.5)
    assert [k for k, v in views.items() if 'Solarize' in v] == ['g2']
    assert views['g2']['Solarize']['prob'] == 0.2
    types = [t['type'] for t in cfg.train_pipeline]
    assert types[-1] == 'PackInputs' and 'algorithm_keys' not in cfg.train_pipeline[-1]
    if name == 'ibot':
        mask = cfg.train_pipeline[2]
        assert mask['type'] == 'iBOTMaskGenerator' and mask['pred_shape'] == 'block'
        assert tuple(mask['pred_ratio']) == (0.0, 0.3)
        assert tuple(mask['pred_ratio_var']) == (0.0, 0.2)
    else:
        assert 'iBOTMaskGenerator' not in types


def _pipeline(name):
    """The config's train pipeline without LoadImageFromFile, built by mmpretrain."""
    from mmpretrain.registry import TRANSFORMS
    cfg = Config.fromfile(str(CONFIGS / f'imagenet_{name}-multicrop.py'))
    loader = cfg.train_dataloader
    assert loader.dataset.type == 'ImageNet' and loader.dataset.split == 'train'
    assert loader.dataset.data_root == 'data/imagenet/'
    assert loader.dataset.pipeline == cfg.train_pipeline
    assert cfg.train_pipeline[0]['type'] == 'LoadImageFromFile'
    return [TRANSFORMS.build(t) for t in cfg.train_pipeline[1:]]


def _run(pipeline, seed=0):
    rng = np.random.default_rng(seed)
    # What LoadImageFromFile leaves: an HxWx3 uint8 (BGR) image and its shapes.
    results = dict(img=rng.integers(0, 256, (256, 256, 3), np.uint8), img_shape=(256, 256),
                   ori_shape=(256, 256))
    for transform in pipeline:
        results = transform(results)
    return results


@pytest.mark.parametrize('name', ['dino', 'ibot'])
def test_base_config_pipeline_makes_2_global_and_10_local_crops(name):
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        packed = _run(_pipeline(name))
    views = packed['inputs']
    assert len(views) == 12
    assert [tuple(v.shape) for v in views] == [(3, 224, 224)] * 2 + [(3, 96, 96)] * 10
    assert all(v.dtype == torch.uint8 for v in views)
    assert ('mask' in packed['data_samples']) == (name == 'ibot')


def test_ibot_mask_reaches_the_model_as_per_sample_tensors():
    from mmpretrain.models.utils import SelfSupDataPreprocessor
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        pipeline = _pipeline('ibot')
        batch = default_collate([_run(pipeline, seed) for seed in range(2)])
    mask = batch['data_samples'][0].mask
    assert isinstance(mask, torch.Tensor) and mask.dtype == torch.bool
    assert mask.shape == (2, 14, 14)
    cfg = Config.fromfile(str(CONFIGS / 'imagenet_ibot-multicrop.py'))
    preprocessor = SelfSupDataPreprocessor(**{k: v for k, v in cfg.data_preprocessor.items()
                                              if k != 'type'})
    data = preprocessor(batch, training=True)
    assert [tuple(x.shape) for x in data['inputs']] == \
        [(2, 3, 224, 224)] * 2 + [(2, 3, 96, 96)] * 10
    masks = torch.stack([sample.mask for sample in data['data_samples']])
    assert masks.shape == (2, 2, 14, 14) and masks.dtype == torch.bool


def test_ibot_config_pipeline_from_image_files(image_folder):
    """The whole pipeline, LoadImageFromFile included, in a dataset (image folder here)."""
    from mmpretrain.registry import DATASETS
    cfg = Config.fromfile(str(CONFIGS / 'imagenet_ibot-multicrop.py'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataset = DATASETS.build(dict(type='CustomDataset', data_root=str(image_folder),
                                      pipeline=cfg.train_pipeline))
        set_random_seed(0)
        item = dataset[0]
    assert [tuple(v.shape[1:]) for v in item['inputs']] == [(224, 224)] * 2 + [(96, 96)] * 10
    assert item['data_samples'].mask.shape == (2, 14, 14)
