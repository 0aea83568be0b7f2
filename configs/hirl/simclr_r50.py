# HIRL-SimCLR, ResNet-50, 200 epochs on ImageNet-1k, on top of mmpretrain's own SimCLR config.
# Baseline: configs/baselines/simclr_resnet50_16xb256-coslr-200e_in1k.py
# (the same mmpretrain config, unchanged).
_base_ = [
    'mmpretrain::simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py',
    '_base_/hirl_resnet50.py',
]

model = dict(type='HIRL', algorithm='SimCLR', **_base_.hirl_model)
custom_hooks = [_base_.hirl_clustering_hook]
default_hooks = dict(non_finite_loss=_base_.non_finite_loss_hook)  # stop on NaN / inf
