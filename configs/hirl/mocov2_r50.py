# HIRL-MoCo, ResNet-50, 200 epochs on ImageNet-1k, on top of mmpretrain's own MoCo config.
# Baseline: configs/baselines/mocov2_resnet50_8xb32-coslr-200e_in1k.py
# (the same mmpretrain config, unchanged).
_base_ = [
    'mmpretrain::mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py',
    '_base_/hirl_resnet50.py',
]

model = dict(type='HIRL', algorithm='MoCo', **_base_.hirl_model)
custom_hooks = [_base_.hirl_clustering_hook]
default_hooks = dict(non_finite_loss=_base_.non_finite_loss_hook)  # stop on NaN / inf
