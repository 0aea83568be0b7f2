# iBOT, ViT-B/16, 400 epochs on ImageNet-1k: the published ViT-B/16 recipe as HIRL ran it
# (hirl-team/HIRL configs/pretrain/baseline/ibot_vit_base_400eps.yaml, the arguments of
# bytedance/ibot's ViT-B/16 release): DINO's schedule (dino_vit-base-p16_...) plus masked image
# modelling on the global crops (block-wise masks, ratio 0 or U(0.1, 0.5) per crop), 8192
# [CLS] and patch prototypes scored by one shared last layer, a separate patch centre and
# patch teacher temperature (0.04 -> 0.07 over 50 epochs), crops (0.32, 1) / (0.05, 0.32).
# Batch: 1024 in total (8 GPUs x 128 here).
# Run: tools/dist_train.sh configs/baselines/ibot_vit-base-p16_8xb128-amp-coslr-400e_in1k.py 8
_base_ = [
    '../_base_/datasets/imagenet_ibot-multicrop.py',
    '_base_/dino_vit-b16_recipe.py',
]
train_dataloader = dict(batch_size=128)  # 8 GPUs x 128 = 1024

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
    dict(type='FreezeLastLayerHook', module='neck.last_layer', freeze_epochs=3),
    dict(type='PerParamGradClipHook', max_norm=0.3),
]
