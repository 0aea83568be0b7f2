# HIRL-MoCo v3, ViT-B/16, 400 epochs on ImageNet-1k (hirl-team/HIRL
# configs/pretrain/hirl/hirl_mocov3_vit_base_400eps.yaml): K = 30000 / 10000 / 5000,
# 100 negative paths, 5-layer semantic heads, 40 warm-up epochs, on the 256-d projector
# output of [CLS] (first view), clustered from the key (momentum) encoder.
# Baseline: configs/baselines/mocov3_vit-base-p16_16xb256-amp-coslr-400e_in1k.py
# (mmpretrain's config at the reference's 400 epochs; its header lists where it differs
# from the reference), inherited unchanged.
_base_ = ['../baselines/mocov3_vit-base-p16_16xb256-amp-coslr-400e_in1k.py',
          '_base_/hirl_vit-b16.py']
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

model = dict(
    type='HIRL',
    algorithm='MoCoV3',
    # The key encoder keeps its own BatchNorm statistics, as the authors' (its parameters
    # follow the online encoder by EMA; mmengine would copy the online statistics too).
    momentum_buffers='own',
    **dict(_base_.hirl_model,
           semantic_head=dict(_base_.hirl_model.semantic_head, num_mlp_layer=5)))
# The heads' group at the weight decay the authors' AdamW is built with (0.1, constant).
optim_wrapper = dict(
    constructor=_base_.hirl_head_group.constructor,
    paramwise_cfg=dict(fixed_decay_groups=dict(semantic_head=dict(weight_decay=0.1))))
custom_hooks = [_base_.hirl_clustering_hook]
default_hooks = dict(non_finite_loss=_base_.non_finite_loss_hook)  # stop on NaN / inf
