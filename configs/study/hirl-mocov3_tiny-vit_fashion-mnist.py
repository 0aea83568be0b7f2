# Fashion-MNIST study, HIRL-MoCo v3: the MoCo v3 baseline (a 4-block ViT) plus the same HIRL
# settings as the other studies (configs/study/_base_/hirl_fashion-mnist.py), on the
# reference's embedding: the 64-d projector output of the first view's [CLS], clustered from
# the momentum encoder. The study's 2-layer semantic heads are kept (the ImageNet run's 5
# layers are in configs/hirl/mocov3_vit-b16.py) so that the studies stay comparable.
_base_ = ['./mocov3_tiny-vit_fashion-mnist.py', './_base_/hirl_fashion-mnist.py']

# The key encoder keeps its own BatchNorm statistics, as in configs/hirl/mocov3_vit-b16.py.
model = dict(type='HIRL', algorithm='MoCoV3', momentum_buffers='own', **_base_.hirl_model)
# The heads' own group at the decay MoCo v3's AdamW is built with (0.1, constant).
optim_wrapper = dict(_base_.hirl_vit_head_group, paramwise_cfg=dict(
    fixed_decay_groups=dict(semantic_head=dict(weight_decay=0.1))))
custom_hooks = [_base_.hirl_clustering_hook]
