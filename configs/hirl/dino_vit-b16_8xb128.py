# HIRL-DINO, ViT-B/16, 400 epochs on ImageNet-1k, on 8 GPUs: configs/hirl/dino_vit-b16.py
# (the authors' 32 GPUs x 32) with 128 images per GPU, i.e. the same total batch (1024), lr
# and schedule. What differs from the authors' run: the semantic heads' BatchNorm
# normalises over 128 rows per GPU instead of 32, and activation memory per GPU is 4x
# theirs, in fp32 (not measured here).
# Baseline: configs/baselines/dino_vit-base-p16_8xb128-amp-coslr-400e_in1k.py.
# Run: tools/dist_train.sh configs/hirl/dino_vit-b16_8xb128.py 8
_base_ = 'dino_vit-b16.py'
train_dataloader = dict(batch_size=128)  # 8 GPUs x 128 = 1024
