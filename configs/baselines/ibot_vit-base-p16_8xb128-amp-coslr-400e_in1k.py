# iBOT, ViT-B/16, 400 epochs on ImageNet-1k, on 8 GPUs: the 32-GPU config
# (ibot_vit-base-p16_32xb32-amp-coslr-400e_in1k.py) with 128 images per GPU, i.e. the same
# total batch (1024), lr and schedule. What differs from the authors' 32 x 32: activation
# memory per GPU is 4x theirs (not measured here). The ViT-B/16 iBOT head has no
# BatchNorm; HIRL-iBOT's semantic heads see 128 rows per GPU
# (configs/hirl/ibot_vit-b16_8xb128.py).
# Run: tools/dist_train.sh configs/baselines/ibot_vit-base-p16_8xb128-amp-coslr-400e_in1k.py 8
_base_ = 'ibot_vit-base-p16_32xb32-amp-coslr-400e_in1k.py'
train_dataloader = dict(batch_size=128)  # 8 GPUs x 128 = 1024
