# Linear classification (linear probe) on ImageNet-1k of a pre-trained ResNet-50: the
# backbone is frozen (all 4 stages and the stem, BN statistics included), a linear head on
# the pooled features is trained for 100 epochs, SGD lr 30, momentum 0.9, no weight decay,
# steps at 60 and 80, 8 GPUs x 32 images; reported: top-1 on val.
# Reference: HIRL (arXiv 2205.13159), whose ResNet-50 linear protocol is MoCo's (the same
# settings); reported for 200-epoch pre-training: MoCo v2 67.60 -> HIRL 68.40,
# SimSiam 69.74 -> 69.81, SwAV 72.68 -> 73.43. This is mmpretrain's MoCo v2 linear config.
#
#   tools/benchmarks/classification/dist_train_linear.sh \
#       configs/benchmarks/classification/imagenet/resnet50_linear-8xb32-steplr-100e_in1k.py \
#       PRETRAIN.pth 8
# (PRETRAIN.pth: e.g. work_dirs/simclr_r50/epoch_200.pth; its backbone.* weights must fit
# the marked backbone exactly, or the run stops.)
_base_ = 'mmpretrain::mocov2/benchmarks/resnet50_8xb32-linear-steplr-100e_in1k.py'

# Reads hirl_mm checkpoints under torch >= 2.6 (weights-only loading) in any tool.
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        frozen_stages=4,
        init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.')))
