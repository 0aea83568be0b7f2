# HIRL-Barlow Twins, ResNet-50, 300 epochs on ImageNet-1k, on the pooled backbone
# (docs/en/user_guides/adding_a_method.md; no reference numbers in the paper; CNN defaults).
# Baseline: configs/baselines/barlowtwins_resnet50_8xb256-coslr-300e_in1k.py
# (the same mmpretrain config, unchanged).
_base_ = [
    'mmpretrain::barlowtwins/barlowtwins_resnet50_8xb256-coslr-300e_in1k.py',
    '_base_/hirl_resnet50.py',
]

# Barlow Twins' projector is 8192-d: on it, three 2-layer heads would hold about 400M
# parameters and the ImageNet feature bank 42 GB per rank. The paper has no Barlow Twins
# run, so this config trains and clusters the pooled backbone (2048-d) instead.
model = dict(type='HIRL', algorithm='BarlowTwins',
             **dict(_base_.hirl_model, embedding='backbone'))
custom_hooks = [_base_.hirl_clustering_hook]
default_hooks = dict(non_finite_loss=_base_.non_finite_loss_hook)  # stop on NaN / inf
