# Fashion-MNIST study, baseline: BEiT (v1, masked image modelling) with a 4-block ViT (64-d,
# patch 4, 28-pixel input: a 7x7 patch grid) on the data of the SimCLR study: same subset,
# epochs and batch (configs/study/simclr_tiny-resnet18_fashion-mnist.py).
# mmpretrain's BEiT recipe
# (configs/baselines/beit_beit-base-p16_8xb256-coslr-400e_in1k.py) at this scale: one random
# crop resized twice, to 28 px for the ViT and to 56 px for the tokenizer (224 / 112 there;
# both give the patch grid, 16- and 8-pixel cells there, 4 and 8 here), colour jitter, flip;
# block-wise masks of 19 of the 49 patches (75 of 196 there, >= 4 per block, 16 there); the
# tokenizer's pixels mapped to [0.1, 0.9] as DALL-E's; BEiT v1 head (linear classifier over
# the vocabulary on the masked patches); AdamW lr 1.5e-3 (BEiT's, unscaled), weight decay
# 0.05 (none on biases, norms, layer scale, cls token), gradient norm clipped at 3.0, linear
# warm-up (1 of 8 epochs; BEiT: 10 of 400) then cosine to 1e-5; drop path 0.1, layer scale
# 0.1, shared relative position bias.
# The tokenizer is mmpretrain's DALL-E encoder narrowed (n_hid 8, one block per group, 64
# tokens instead of 8192) and randomly initialised, and never trained: the pre-trained
# DALL-E weights are not available here, so the targets are the argmax codes of a fixed
# random convolutional network (its three 2x poolings turn the 56-px image into the 7x7
# grid of the ViT's patches).
_base_ = './simclr_tiny-resnet18_fashion-mnist.py'

embed_dims = 64
patch_size = 4
img_size = 28
grid = img_size // patch_size  # 7x7 patches
vocab_size = 64

train_pipeline = [
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandomResizedCropAndInterpolationWithTwoPic', size=img_size,
         second_size=2 * img_size, interpolation='bicubic', second_interpolation='lanczos',
         scale=(0.08, 1.0)),
    dict(type='BEiTMaskGenerator', input_size=(grid, grid), num_masking_patches=19,
         max_num_patches=None, min_num_patches=4),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

model = dict(
    _delete_=True,
    type='BEiT',
    data_preprocessor=dict(
        type='TwoNormDataPreprocessor', mean=[72.9] * 3, std=[90.0] * 3,
        second_mean=[-31.875] * 3, second_std=[318.75] * 3, to_rgb=False),
    backbone=dict(
        type='BEiTPretrainViT',
        arch=dict(embed_dims=embed_dims, num_layers=4, num_heads=4,
                  feedforward_channels=4 * embed_dims),
        img_size=img_size,
        patch_size=patch_size,
        drop_path_rate=0.1,
        final_norm=True,
        out_type='raw',
        layer_scale_init_value=0.1,
        init_cfg=[
            dict(type='TruncNormal', std=0.02, layer='Linear'),
            dict(type='TruncNormal', std=0.02, layer='Conv2d'),
            dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
        ]),
    neck=None,
    head=dict(type='BEiTV1Head', embed_dims=embed_dims, num_embed=vocab_size,
              loss=dict(type='CrossEntropyLoss')),
    target_generator=dict(type='DALL-E', n_hid=8, n_blk_per_group=1, vocab_size=vocab_size))

max_epochs = _base_.max_epochs
warmup_epochs = 1
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1.5e-3, betas=(0.9, 0.999), weight_decay=0.05),
    clip_grad=dict(max_norm=3.0),
    paramwise_cfg=dict(
        custom_keys={
            '.ln': dict(decay_mult=0.0),
            '.bias': dict(decay_mult=0.0),
            'q_bias': dict(decay_mult=0.0),
            'v_bias': dict(decay_mult=0.0),
            '.cls_token': dict(decay_mult=0.0),
            '.pos_embed': dict(decay_mult=0.0),
            '.gamma': dict(decay_mult=0.0),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=1e-5,
         by_epoch=True, begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
# The fixed tokenizer's parameters get no gradient (mmpretrain's BEiT config sets it too).
find_unused_parameters = True
