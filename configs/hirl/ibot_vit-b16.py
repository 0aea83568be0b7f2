# HIRL-iBOT, ViT-B/16, 400 epochs on ImageNet-1k:
# configs/baselines/ibot_vit-base-p16_8xb128-amp-coslr-400e_in1k.py plus
# HIRL's reference settings for iBOT (docs/en/method.md; hirl-team/HIRL
# configs/pretrain/hirl/hirl_ibot_vit_base_400eps.yaml): K = 30000 / 10000 / 1000, 100
# negative paths, 2-layer heads, 40 warm-up epochs, on the 256-d bottleneck of the iBOT
# head on the first (masked) global crop's [CLS], clustered from the teacher (unmasked
# images, eval transform).
# Run: tools/dist_train.sh configs/hirl/ibot_vit-b16.py 8
_base_ = [
    '../baselines/ibot_vit-base-p16_8xb128-amp-coslr-400e_in1k.py',
    '_base_/hirl_vit-b16.py',
]

model = dict(type='HIRL', algorithm='iBOT',
             **dict(_base_.hirl_model, num_clusters=[30000, 10000, 1000]))
custom_hooks = _base_.custom_hooks + [_base_.hirl_clustering_hook]
