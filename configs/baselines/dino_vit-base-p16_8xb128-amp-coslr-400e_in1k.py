# DINO, ViT-B/16, 400 epochs on ImageNet-1k, on 8 GPUs: the 32-GPU config
# (dino_vit-base-p16_32xb32-amp-coslr-400e_in1k.py) with 128 images per GPU, i.e. the same
# total batch (1024), lr and schedule. What differs from the authors' 32 x 32: activation
# memory per GPU is 4x theirs (not measured here; reduce the local crops or use the 32-GPU
# config if it does not fit). DINO's ViT-B/16 head has no BatchNorm, so the per-GPU batch
# changes nothing else for the baseline; HIRL-DINO's semantic heads see 128 rows per GPU
# (configs/hirl/dino_vit-b16_8xb128.py).
# Run: tools/dist_train.sh configs/baselines/dino_vit-base-p16_8xb128-amp-coslr-400e_in1k.py 8
_base_ = 'dino_vit-base-p16_32xb32-amp-coslr-400e_in1k.py'
train_dataloader = dict(batch_size=128)  # 8 GPUs x 128 = 1024
