# Fashion-MNIST study, baseline: MoCo v3 (the paper's ViT method) with a 4-block ViT (64-d,
# patch 4, 28-pixel input, ~0.2M parameters) on the data of the SimCLR study: same subset,
# augmentations, epochs and batch (configs/study/simclr_tiny-resnet18_fashion-mnist.py).
# MoCo v3's ViT recipe
# (configs/baselines/mocov3_vit-base-p16_16xb256-amp-coslr-400e_in1k.py) at this scale:
# fixed sin-cos position embedding and frozen random patch projection, 3-layer projector and
# 2-layer predictor without biases (last BN without affine), narrowed to 256 hidden / 64
# out; temperature 0.2 (loss x 2T); momentum encoder EMA 0.99 -> 1 by cosine; AdamW with
# weight decay 0.1, linear warm-up (1 of 8 epochs, MoCo v3: 40 of 300) then cosine to 0.
_base_ = './simclr_tiny-resnet18_fashion-mnist.py'

embed_dims = 64
temperature = 0.2
model = dict(
    _delete_=True,
    type='MoCoV3',
    base_momentum=0.01,  # mmpretrain's convention: 1 - EMA momentum, cosine to 0
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor', mean=[72.9] * 3, std=[90.0] * 3, to_rgb=False),
    backbone=dict(
        type='MoCoV3ViT',
        arch=dict(embed_dims=embed_dims, num_layers=4, num_heads=4,
                  feedforward_channels=4 * embed_dims),
        img_size=28,
        patch_size=4,
        stop_grad_conv1=True),
    # BN, not mmpretrain's default SyncBN (no CPU kernels): these configs also run as
    # several CPU processes.
    neck=dict(
        type='NonLinearNeck', in_channels=embed_dims, hid_channels=256, out_channels=64,
        num_layers=3, with_bias=False, with_last_bn=True, with_last_bn_affine=False,
        with_last_bias=False, with_avg_pool=False, norm_cfg=dict(type='BN1d')),
    head=dict(
        type='MoCoV3Head',
        predictor=dict(
            type='NonLinearNeck', in_channels=64, hid_channels=256, out_channels=64,
            num_layers=2, with_bias=False, with_last_bn=True, with_last_bn_affine=False,
            with_last_bias=False, with_avg_pool=False, norm_cfg=dict(type='BN1d')),
        loss=dict(type='CrossEntropyLoss', loss_weight=2 * temperature),
        temperature=temperature))

max_epochs = _base_.max_epochs
warmup_epochs = 1
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.1))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-4, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
]
