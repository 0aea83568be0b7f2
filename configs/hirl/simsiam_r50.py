# HIRL-SimSiam, ResNet-50, 200 epochs on ImageNet-1k, on top of mmpretrain's own SimSiam config.
# Baseline: configs/baselines/simsiam_resnet50_8xb32-coslr-200e_in1k.py
# (the same mmpretrain config, unchanged).
_base_ = [
    'mmpretrain::simsiam/simsiam_resnet50_8xb32-coslr-200e_in1k.py',
    '_base_/hirl_resnet50.py',
]

model = dict(type='HIRL', algorithm='SimSiam', **_base_.hirl_model)
# Keep mmpretrain's SimSiamHook (fixed predictor learning rate) and add HIRL's clustering.
custom_hooks = _base_.custom_hooks + [_base_.hirl_clustering_hook]
default_hooks = dict(non_finite_loss=_base_.non_finite_loss_hook)  # stop on NaN / inf
