# HIRL-DINO, ViT-B/16, 400 epochs on ImageNet-1k, as the HIRL authors ran it (hirl-team/HIRL
# configs/pretrain/hirl/hirl_dino_vit_base_400eps.yaml): the DINO baseline
# (configs/baselines/dino_vit-base-p16_32xb32-amp-coslr-400e_in1k.py) plus HIRL's reference
# settings for DINO (docs/en/method.md): K = 30000 / 10000 / 5000, 100 negative paths,
# 2-layer heads, 40 warm-up epochs, on the 256-d bottleneck of the DINO head on the first
# global crop's [CLS] (the neck's last output), clustered from the teacher with the eval
# transform. Also as the authors ran it: fp32 (their DINO baseline ran fp16), the semantic
# heads in an AdamW group of their own at the optimizer's default weight decay (0.01, on
# every head parameter, not scheduled), the global gradient norm of student and heads
# clipped at 0.3.
# Batch: 1024 = 32 GPUs x 32 (the semantic heads' BatchNorm sees 32 rows per GPU). On
# 8 GPUs: configs/hirl/dino_vit-b16_8xb128.py.
# Run: GPUS=32 tools/slurm_train.sh <partition> hirl-dino configs/hirl/dino_vit-b16.py
_base_ = [
    '../baselines/dino_vit-base-p16_32xb32-amp-coslr-400e_in1k.py',
    '_base_/hirl_vit-b16.py',
]

model = dict(type='HIRL', algorithm='DINO', **_base_.hirl_model)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',  # fp32 (hirl_dino_vit_base_400eps.yaml: use_fp16: False)
    optimizer=_base_.optim_wrapper.optimizer,
    clip_grad=_base_.optim_wrapper.clip_grad,
    constructor=_base_.hirl_head_group.constructor,
    paramwise_cfg=dict(_base_.optim_wrapper.paramwise_cfg,
                       **_base_.hirl_head_group.paramwise_cfg))
# DINO's schedule hooks stay; the clustering hook is added.
custom_hooks = _base_.custom_hooks + [_base_.hirl_clustering_hook]
