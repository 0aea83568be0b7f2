# iBOT, ViT-B/16, 400 epochs on ImageNet-1k, as the HIRL authors ran their iBOT baseline
# (hirl-team/HIRL configs/pretrain/baseline/ibot_vit_base_400eps.yaml, the arguments of
# bytedance/ibot's ViT-B/16 release): DINO's schedule (dino_vit-base-p16_32xb32-...) plus
# masked image modelling on the global crops (block-wise masks, ratio 0 or U(0.1, 0.5) per
# crop), 8192 [CLS] and patch prototypes scored by one shared last layer, a separate patch
# centre and patch teacher temperature (0.04 -> 0.07 over 50 epochs), crops (0.32, 1) /
# (0.05, 0.32); fp16, as the authors ran it. As for DINO, the authors' runner clips the
# global gradient norm at 0.3 and starts the teacher head from its own random init
# (bytedance/ibot: per-parameter clipping, a copied head; see the DINO config).
# Batch: 1024 = 32 GPUs x 32, the authors' layout. On 8 GPUs:
# ibot_vit-base-p16_8xb128-amp-coslr-400e_in1k.py (same batch and lr, 4x the memory per GPU).
# Run: GPUS=32 tools/slurm_train.sh <partition> ibot configs/baselines/ibot_vit-base-p16_32xb32-amp-coslr-400e_in1k.py
_base_ = [
    '../_base_/datasets/imagenet_ibot-multicrop.py',
    '_base_/dino_vit-b16_recipe.py',
]
train_dataloader = dict(batch_size=32)  # 32 GPUs x 32 = 1024

model = dict(
    type='iBOT',
    backbone=dict(use_mask_token=True, out_type='raw'),  # all tokens, masked globals
    neck=dict(type='iBOTNeck', out_channels=8192, patch_out_channels=8192,
              shared_head=True),
    head=dict(type='iBOTHead',
              loss=dict(_delete_=True, type='iBOTLoss', out_channels=8192,
                        patch_out_channels=8192, num_global_crops=2, student_temp=0.1,
                        teacher_temp=0.04, teacher_patch_temp=0.04, center_momentum=0.9,
                        patch_center_momentum=0.9, lambda_cls=1.0, lambda_patch=1.0)))

custom_hooks = [
    dict(type='TeacherTempWarmupHook', warmup_temp=0.04, temp=0.07, warmup_epochs=50,
         attribute='head.loss_module.teacher_temp'),
    dict(type='TeacherTempWarmupHook', warmup_temp=0.04, temp=0.07, warmup_epochs=50,
         attribute='head.loss_module.teacher_patch_temp'),
    # Dropped after the global clip, as in the authors' runner.
    dict(type='FreezeLastLayerHook', module='neck.last_layer', freeze_epochs=3),
]
