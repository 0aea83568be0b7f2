# Fine-tuning on ImageNet-1k of a pre-trained ResNet-50 (every layer trained).
# Reference: HIRL (arXiv 2205.13159), fine-tuning protocol of its ResNet-50 models:
# 20 epochs, 8 GPUs x 128 images, SGD momentum 0.9, no weight decay, lr 0.1 for the
# backbone and 1.0 for the new linear head, divided by 5 at epochs 12 and 16, SyncBN,
# RandomResizedCrop 224 + flip; reported: top-1 on val (200-epoch pre-training:
# MoCo v2 73.14 -> HIRL 73.86, SimSiam 72.25 -> 72.88, SwAV 76.82 -> 77.18).
# Differences: none known for the recipe; the reference trains with fp16.
#
#   tools/benchmarks/classification/dist_train.sh \
#       configs/benchmarks/classification/imagenet/resnet50_ft-8xb128-steplr-20e_in1k.py \
#       PRETRAIN.pth 8
_base_ = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'

# Reads hirl_mm checkpoints under torch >= 2.6 (weights-only loading) in any tool.
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.')))

train_dataloader = dict(batch_size=128)

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.),
    # The randomly initialised head learns 10x faster (lr 1.0).
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.)}))
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[12, 16], gamma=0.2)]
train_cfg = dict(by_epoch=True, max_epochs=20, val_interval=1)
auto_scale_lr = dict(base_batch_size=1024)

default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))
