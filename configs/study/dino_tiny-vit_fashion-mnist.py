# DINO at CPU size: a 4-block ViT (64-d, patch 4, ~0.2M parameters) on a class-balanced
# Fashion-MNIST subset, 2 global 28-pixel crops + 4 local 12-pixel crops, 390 iterations.
# The recipe of configs/baselines/dino_vit-base-p16_* at this scale, as the HIRL authors' code
# runs it (AdamW with warm-up and cosine, weight decay 0.04 -> 0.4, cosine EMA, teacher head
# from its own random init, DINO's position-embedding interpolation, frozen last layer
# during the first epoch, the global gradient norm clipped at 3.0), except three settings that a run this short needs
# (docs/en/results.md, "DINO on Fashion-MNIST (CPU)", has the measured ablation): BatchNorm in the head (DINO's
# own option, its ResNet setting), a constant teacher temperature of 0.02 (DINO's advice
# against collapse) instead of the 0.04 -> 0.07 warm-up, and teacher momentum 0.99 -> 1
# instead of 0.996 -> 1. With the ViT-B/16 values the teacher's targets go uniform after a
# few epochs. Used by the tests and by the figures of docs/en/results.md (KNN of the
# teacher vs the ViT at random init; DINO vs HIRL-DINO).
_base_ = 'mmpretrain::_base_/default_runtime.py'
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

data_root = '/usr/share/datasets/fashion-mnist'  # Debian's dataset-fashion-mnist
dataset_type = 'HierarchicalFashionMNIST'
num_per_class = 500
num_global_crops = 2
num_local_crops = 4
patch_size = 4


# What every crop gets after its random resized crop (global crop 2 adds solarisation).
view_augments = [
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomApply',
         transforms=[dict(type='ColorJitter', brightness=0.4, contrast=0.4)], prob=0.8),
]
global_crop = dict(type='RandomResizedCrop', scale=28, crop_ratio_range=(0.25, 1.),
                   interpolation='bicubic', backend='pillow')
local_crop = dict(type='RandomResizedCrop', scale=12, crop_ratio_range=(0.05, 0.25),
                  interpolation='bicubic', backend='pillow')
solarize = dict(type='Solarize', thr=128, prob=0.2)
train_pipeline = [
    dict(type='MultiView', num_views=[1, 1, num_local_crops],
         transforms=[[global_crop] + view_augments, [global_crop] + view_augments + [solarize],
                     [local_crop] + view_augments]),
    dict(type='PackInputs'),
]
eval_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=128,
    num_workers=2,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 num_per_class=num_per_class, pipeline=train_pipeline))

embed_dims = 64
out_channels = 512
teacher_temp = 0.02  # constant (ViT-B/16: 0.04 -> 0.07 over 50 epochs)
model = dict(
    type='DINO',
    base_momentum=0.01,  # m = 0.99 -> 1 (ViT-B/16: 0.996)
    num_global_crops=num_global_crops,
    teacher_neck_init='independent',  # as the ViT-B/16 recipe (the authors' HIRL code)
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor', mean=[72.9] * 3, std=[90.0] * 3, to_rgb=False),
    backbone=dict(type='MaskedVisionTransformer',
                  arch=dict(embed_dims=embed_dims, num_layers=4, num_heads=4,
                            feedforward_channels=4 * embed_dims),
                  img_size=28, patch_size=patch_size, drop_path_rate=0.1,
                  out_type='cls_token', pos_embed_interpolation='scale_factor'),
    neck=dict(type='DINONeck', in_channels=embed_dims, out_channels=out_channels,
              hidden_channels=256, bottleneck_channels=64, num_layers=3, use_bn=True),
    head=dict(type='DINOHead',
              loss=dict(type='DINOLoss', out_channels=out_channels,
                        num_global_crops=num_global_crops, student_temp=0.1,
                        teacher_temp=teacher_temp, center_momentum=0.9)))

max_epochs = 10
warmup_epochs = 1
optim_wrapper = dict(
    type='OptimWrapper',
    # 4x DINO's rule (0.0005 x batch / 256) for a 10-epoch run.
    optimizer=dict(type='AdamW', lr=0.0005 * 128 / 256 * 4, betas=(0.9, 0.999),
                   weight_decay=0.04),
    clip_grad=dict(max_norm=3.0),  # the global norm, as the authors' runner
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-9, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=1e-6,
         by_epoch=True, begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
    # 0.04 -> 0.4; HIRL's semantic heads keep their fixed decay (the ViT-B/16 recipe's).
    dict(type='CosineAnnealingWeightDecayExceptFixed', eta_min=0.4, T_max=max_epochs,
         by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
custom_hooks = [
    dict(type='TeacherTempWarmupHook', warmup_temp=teacher_temp, temp=teacher_temp,
         warmup_epochs=3,
         attribute='head.loss_module.teacher_temp'),
    dict(type='FreezeLastLayerHook', module='neck.last_layer', freeze_epochs=1),
]
default_hooks = dict(logger=dict(type='LoggerHook', interval=10),
                     checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
# No distributed back end here: tools/train.py's launcher takes NCCL on GPUs and gloo on
# CPU-only machines (hirl_mm/utils/launch.py).
randomness = dict(seed=0)
