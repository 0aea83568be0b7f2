# Linear classification (linear probe) on ImageNet-1k of a pre-trained ViT-B/16, as DINO
# and iBOT evaluate their teacher: the backbone is frozen (patch embedding, [CLS] token,
# position embedding, all 12 blocks and the final LayerNorm), a linear layer (weights
# N(0, 0.01), zero bias) on the final-norm [CLS] token concatenated with the mean of the
# final-norm patch tokens (1536-d, hirl_mm's ClsAvgPoolNeck) is trained for 100 epochs with
# SGD, momentum 0.9, no weight decay, lr 0.001 per 256 images (0.004 for 8 GPUs x 128
# images), cosine to 0 (stepped per epoch); train: RandomResizedCrop 224 (bilinear) + flip;
# val: resize the short side to 256 (bicubic), center-crop 224; reported: top-1 on val.
# Source: facebookresearch/dino eval_linear.py (its defaults: 100 epochs, lr 0.001 scaled by
# batch / 256, SGD momentum 0.9, weight decay 0, CosineAnnealingLR(eta_min=0), 128 images
# per GPU, the transforms above; for ViT-B n_last_blocks=1 and avgpool_patchtokens=True);
# bytedance/ibot evaluation/eval_linear.py is the same recipe (run.sh: LINEAR_N_LAST_BLOCKS=1,
# LINEAR_AVGPOOL=2). Reported for ViT-B/16: DINO 78.2 (README), iBOT 79.5.
# Differences:
# * Learning rate: 0.001 / 256 is eval_linear.py's default; DINO recommends tuning it per
#   checkpoint and iBOT sweeps it (eval_linear_multi.py), reporting the best. Override
#   optim_wrapper.optimizer.lr with --cfg-options to sweep.
#
#   python tools/model_converters/teacher_backbone.py work_dirs/dino_vit-b16/epoch_400.pth \
#       work_dirs/dino_vit-b16/teacher_backbone.pth
#   tools/benchmarks/classification/dist_train_linear.sh \
#       configs/benchmarks/classification/imagenet/vit-base-p16_linear-8xb128-coslr-100e_in1k.py \
#       work_dirs/dino_vit-b16/teacher_backbone.pth 8
# (the teacher's backbone as backbone.*; it must fit the marked backbone exactly, or the run
# stops: a raw iBOT checkpoint is refused for its mask_token, a raw DINO checkpoint would
# give the student's backbone.)
_base_ = 'mmpretrain::mocov3/benchmarks/vit-base-p16_8xb128-linear-coslr-90e_in1k.py'

# Reads hirl_mm checkpoints under torch >= 2.6 (weights-only loading) in any tool.
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

num_layers = 12  # ViT-B
model = dict(
    backbone=dict(
        _delete_=True,  # the base's MoCoV3ViT: mmpretrain's ViT, as hirl_mm pre-trains it
        type='VisionTransformer',
        arch='b',
        img_size=224,
        patch_size=16,
        out_type='raw',  # all final-norm tokens, for the neck
        final_norm=True,
        drop_path_rate=0.,
        frozen_stages=num_layers,  # everything, the final LayerNorm included
        init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.')),
    neck=dict(type='ClsAvgPoolNeck'),  # [CLS] ++ mean patch token: 1536-d
    # As DINO's LinearClassifier: Linear(1536, 1000), N(0, 0.01), bias 0.
    head=dict(type='LinearClsHead', num_classes=1000, in_channels=2 * 768,
              init_cfg=dict(type='Normal', std=0.01, layer='Linear')))

# The references' eval transform resizes with bicubic interpolation (PIL).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 100
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.001 * 1024 / 256, momentum=0.9, weight_decay=0.))
param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True, begin=0,
         end=max_epochs, eta_min=0.)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
auto_scale_lr = dict(base_batch_size=1024)

default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))
