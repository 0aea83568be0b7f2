# iBOT at CPU size: dino_tiny-vit_fashion-mnist.py plus masked image modelling on the two
# global crops (7x7 patch grid, block-wise masks, ratio 0 or U(0.1, 0.5) per crop as the
# ViT-B/16 recipe), a shared [CLS] / patch prototype layer, the patch centre and patch
# teacher temperature (constant at this scale, as the [CLS] one).
_base_ = 'dino_tiny-vit_fashion-mnist.py'

global_crop = dict(_base_.global_crop, crop_ratio_range=(0.32, 1.))
local_crop = dict(_base_.local_crop, crop_ratio_range=(0.05, 0.32))
train_pipeline = [
    dict(type='MultiView', num_views=[1, 1, _base_.num_local_crops],
         transforms=[[global_crop] + _base_.view_augments,
                     [global_crop] + _base_.view_augments + [_base_.solarize],
                     [local_crop] + _base_.view_augments]),
    dict(type='iBOTMaskGenerator', patch_size=_base_.patch_size,
         num_masked_views=_base_.num_global_crops, pred_ratio=(0., 0.3),
         pred_ratio_var=(0., 0.2), pred_shape='block'),
    dict(type='PackInputs'),  # 'mask' is one of its default keys (a bool tensor)
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

model = dict(
    type='iBOT',
    backbone=dict(use_mask_token=True, out_type='raw'),
    neck=dict(type='iBOTNeck', patch_out_channels=_base_.out_channels, shared_head=True),
    head=dict(type='iBOTHead',
              loss=dict(_delete_=True, type='iBOTLoss', out_channels=_base_.out_channels,
                        patch_out_channels=_base_.out_channels,
                        num_global_crops=_base_.num_global_crops, student_temp=0.1,
                        teacher_temp=_base_.teacher_temp,
                        teacher_patch_temp=_base_.teacher_temp)))
# The DINO tiny config's CPU-scale changes (BN head, momentum 0.99, constant teacher
# temperature 0.02) hold for both of iBOT's teacher temperatures.
custom_hooks = [
    dict(type='TeacherTempWarmupHook', warmup_temp=_base_.teacher_temp,
         temp=_base_.teacher_temp, warmup_epochs=3, attribute='head.loss_module.teacher_temp'),
    dict(type='TeacherTempWarmupHook', warmup_temp=_base_.teacher_temp,
         temp=_base_.teacher_temp, warmup_epochs=3,
         attribute='head.loss_module.teacher_patch_temp'),
    dict(type='FreezeLastLayerHook', module='neck.last_layer', freeze_epochs=1),
]
