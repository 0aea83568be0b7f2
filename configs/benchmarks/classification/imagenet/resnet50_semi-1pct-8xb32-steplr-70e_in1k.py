# Semi-supervised fine-tuning on 1% of ImageNet-1k's labels (about 13 images per class) of
# a pre-trained ResNet-50: every layer trained on the subset, evaluated on the full val set.
# Reference: HIRL (arXiv 2205.13159), semi-supervised protocol of its ResNet-50 models:
# 70 epochs, 8 GPUs x 32 images, SGD momentum 0.9, no weight decay, lr 0.02 for the
# backbone and 0.2 for the new linear head, divided by 10 at epochs 30 and 60, SyncBN;
# reported: top-1 on val.
# The subset: a deterministic, seeded, class-balanced 1% of meta/train.txt, written once by
#   python tools/benchmarks/classification/make_label_subsets.py data/imagenet/meta/train.txt
# (-> data/imagenet/meta/train_1percent.txt and train_10percent.txt, seed 0).
#
#   tools/benchmarks/classification/dist_train_semi.sh \
#       configs/benchmarks/classification/imagenet/resnet50_semi-1pct-8xb32-steplr-70e_in1k.py \
#       PRETRAIN.pth 8
_base_ = 'mmpretrain::resnet/resnet50_8xb32_in1k.py'

# Reads hirl_mm checkpoints under torch >= 2.6 (weights-only loading) in any tool.
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.')))

# The labelled subset; images stay in data/imagenet/train/.
train_dataloader = dict(
    batch_size=32,
    dataset=dict(ann_file='meta/train_1percent.txt', data_prefix='train'))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=0.),
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10.)}))  # head lr 0.2
param_scheduler = [dict(type='MultiStepLR', by_epoch=True, milestones=[30, 60], gamma=0.1)]
train_cfg = dict(by_epoch=True, max_epochs=70, val_interval=5)
auto_scale_lr = dict(base_batch_size=256)

default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))
