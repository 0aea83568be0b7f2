# ImageNet-1k training data with DINO's multi-crop augmentation, for ViT-B/16 (Caron et al.,
# "Emerging Properties in Self-Supervised Vision Transformers", arXiv 2104.14294).
# Reference: DataAugmentationDINO in facebookresearch/dino main_dino.py (L419-464; blur and
# solarize in utils.py L36-68). Released ViT-B/16 recipe (dino_vitbase16_pretrain/args.txt,
# linked from the README; as HIRL runs it: hirl-team/HIRL configs/pretrain/baseline/
# dino_vit_base_400eps.yaml L11-14, L35): 2 global crops 224 with scale (0.25, 1), 10 local
# crops 96 with scale (0.05, 0.25), 32 images per GPU on 32 GPUs. (main_dino.py's defaults,
# L108-116, are the ViT-S ones: (0.4, 1), 8 x (0.05, 0.4).)
# Order per crop, as the reference: RandomResizedCrop (bicubic) -> flip 0.5 -> ColorJitter
# (0.4, 0.4, 0.2, 0.1) with p 0.8 -> grayscale 0.2 -> blur (sigma in [0.1, 2]) -> [solarize].
# Blur p: 1.0 on global 1, 0.1 on global 2, 0.5 on locals; solarize p 0.2 on global 2 only.
# mmpretrain's transforms run the same PIL operations on BGR arrays (crop + bicubic resize,
# colour jitter, blur, solarize at 128 give identical pixels to torchvision's). Differences:
# - images are decoded with OpenCV (BGR) instead of PIL; SelfSupDataPreprocessor
#   (to_rgb=True) flips to RGB and normalises, as the reference's ToTensor + Normalize;
# - RandomGrayscale truncates the weighted channel sum (PIL's 'L' conversion rounds), so
#   grey pixels can differ by one level;
# - random draws come from numpy's global RNG (seeded by mmengine) instead of torch/python.
dataset_type = 'ImageNet'
data_root = 'data/imagenet/'
data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

global_crops_scale = (0.25, 1.0)
local_crops_scale = (0.05, 0.25)
local_crops_number = 10


def _view(size, crop_scale, blur_prob, solarize_prob=0.0):
    """One crop's transforms (the reference's global_transfo1/2 and local_transfo)."""
    view = [
        dict(type='RandomResizedCrop', scale=size, crop_ratio_range=crop_scale,
             interpolation='bicubic', backend='pillow'),
        dict(type='RandomFlip', prob=0.5),
        dict(type='RandomApply',
             transforms=[dict(type='ColorJitter', brightness=0.4, contrast=0.4,
                              saturation=0.2, hue=0.1)],
             prob=0.8),
        # Images are BGR here: the BT.601 luma weights in B, G, R order.
        dict(type='RandomGrayscale', prob=0.2, keep_channels=True,
             channel_weights=(0.114, 0.587, 0.299)),
        dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf',
             prob=blur_prob),
    ]
    if solarize_prob > 0:
        view.append(dict(type='Solarize', thr=128, prob=solarize_prob))
    return view


global_view1 = _view(224, global_crops_scale, blur_prob=1.0)
global_view2 = _view(224, global_crops_scale, blur_prob=0.1, solarize_prob=0.2)
local_view = _view(96, local_crops_scale, blur_prob=0.5)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=[1, 1, local_crops_number],
         transforms=[global_view1, global_view2, local_view]),
    dict(type='PackInputs'),
]

# 1024 images per step in the reference (32 GPUs x 32). batch_size is per GPU: set it so that
# GPUs x batch_size = 1024 (e.g. 8 x 128).
train_dataloader = dict(
    batch_size=32,
    num_workers=10,  # the reference's --num_workers default
    persistent_workers=True,
    pin_memory=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline))
