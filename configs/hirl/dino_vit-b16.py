# HIRL-DINO, ViT-B/16, 400 epochs on ImageNet-1k:
# configs/baselines/dino_vit-base-p16_8xb128-amp-coslr-400e_in1k.py (the
# released ViT-B/16 recipe) plus HIRL's reference settings for DINO (docs/en/method.md;
# hirl-team/HIRL configs/pretrain/hirl/hirl_dino_vit_base_400eps.yaml): K = 30000 / 10000 /
# 5000, 100 negative paths, 2-layer heads, 40 warm-up epochs, on the 256-d bottleneck of
# the DINO head on the first global crop's [CLS] (the neck's last output), clustered from
# the teacher with the eval transform.
# Run: tools/dist_train.sh configs/hirl/dino_vit-b16.py 8
_base_ = [
    '../baselines/dino_vit-base-p16_8xb128-amp-coslr-400e_in1k.py',
    '_base_/hirl_vit-b16.py',
]

model = dict(type='HIRL', algorithm='DINO', **_base_.hirl_model)
# DINO's schedule hooks stay; the clustering hook is added.
custom_hooks = _base_.custom_hooks + [_base_.hirl_clustering_hook]
