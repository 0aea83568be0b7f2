# HIRL-SwAV, ResNet-50, multi-crop 2x224 + 6x96, 200 epochs on ImageNet-1k, on top of
# mmpretrain's own SwAV config. The reference turned iter-wise assignment on for SwAV.
# Baseline: configs/baselines/swav_resnet50_8xb32-mcrop-coslr-200e_in1k-224px-96px.py
# (the same mmpretrain config, unchanged).
_base_ = [
    'mmpretrain::swav/swav_resnet50_8xb32-mcrop-coslr-200e_in1k-224px-96px.py',
    '_base_/hirl_resnet50.py',
]

model = dict(type='HIRL', algorithm='SwAV', **dict(_base_.hirl_model, iter_wise_assignment=True))
# Keep mmpretrain's SwAVHook (queue, frozen prototypes) and add HIRL's clustering.
custom_hooks = _base_.custom_hooks + [_base_.hirl_clustering_hook]
default_hooks = dict(non_finite_loss=_base_.non_finite_loss_hook)  # stop on NaN / inf
