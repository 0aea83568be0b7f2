# ImageNet-1k training data for iBOT ViT-B/16 (Zhou et al., "iBOT: Image BERT Pre-Training
# with Online Tokenizer", arXiv 2111.07832): DINO's multi-crop views with wider crops, plus
# patch masks for the two global crops.
# Reference: bytedance/ibot main_ibot.py, DataAugmentationiBOT (L574-621: the same
# transforms as DINO's; see ./imagenet_dino-multicrop.py for them and for the small
# differences of mmpretrain's versions) and ImageFolderMask in loader.py (L18-113; patch 16,
# aspect ratio (0.3, 1/0.3) as main_ibot.py L167-176).
# Released ViT-B/16 recipe (vitb_16/args.txt, linked from the README; as HIRL runs it:
# hirl-team/HIRL configs/pretrain/baseline/ibot_vit_base_400eps.yaml L11-14, L38-41, L47):
# global crops scale (0.32, 1), 10 local crops with scale (0.05, 0.32), block masks with
# pred_ratio (0, 0.3) and pred_ratio_var (0, 0.2) (half of the global crops unmasked, the
# others at a ratio in [0.1, 0.5]), 32 images per GPU on 4 nodes x 8 GPUs = 1024. (The
# README's command, L64-78, is ViT-S/16's: crops (0.25, 1) / (0.05, 0.25), same masks.)
# Differences: masks are drawn with numpy's global RNG (seeded by mmengine) instead of
# Python's `random`; iBOT also draws (unused) masks for the local crops, this does not;
# --pred_start_epoch (masks only from some epoch on; 0 for ViTs) is not supported.
# The config that uses this base must import hirl_mm (custom_imports) for iBOTMaskGenerator.
_base_ = './imagenet_dino-multicrop.py'

global_crops_scale = (0.32, 1.0)
local_crops_scale = (0.05, 0.32)


def _rescaled(view, crop_scale):
    """DINO's view with another RandomResizedCrop scale range."""
    assert view[0]['type'] == 'RandomResizedCrop'
    return [dict(view[0], crop_ratio_range=crop_scale)] + list(view[1:])


global_view1 = _rescaled(_base_.global_view1, global_crops_scale)
global_view2 = _rescaled(_base_.global_view2, global_crops_scale)
local_view = _rescaled(_base_.local_view, local_crops_scale)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=[1, 1, _base_.local_crops_number],
         transforms=[global_view1, global_view2, local_view]),
    dict(type='iBOTMaskGenerator', patch_size=16, num_masked_views=2,
         pred_ratio=(0.0, 0.3), pred_ratio_var=(0.0, 0.2),
         pred_aspect_ratio=(0.3, 1 / 0.3), pred_shape='block'),
    # 'mask' is a default key of PackInputs: it becomes a bool tensor in data_sample.mask,
    # (2, 14, 14) per sample. Do not add algorithm_keys=['mask']: that overwrites the tensor
    # with the raw numpy array, which then never reaches the device.
    dict(type='PackInputs'),
]

# batch_size is per GPU (32 x 32 GPUs = 1024 in the reference; e.g. 8 x 128).
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
