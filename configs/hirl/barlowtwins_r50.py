# HIRL-Barlow Twins, ResNet-50, 300 epochs on ImageNet-1k: the README's example of adding
# a method with one inheriting config (no reference numbers in the paper; CNN defaults).
# Baseline: configs/baselines/barlowtwins_r50.py (the same mmpretrain config, unchanged).
_base_ = [
    'mmpretrain::barlowtwins/barlowtwins_resnet50_8xb256-coslr-300e_in1k.py',
    '_base_/hirl_resnet50.py',
]

model = dict(type='HIRL', algorithm='BarlowTwins', **_base_.hirl_model)
custom_hooks = [_base_.hirl_clustering_hook]
