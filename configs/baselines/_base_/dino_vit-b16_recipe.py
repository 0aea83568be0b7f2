# DINO's ViT-B/16 model and schedule (no data), as the HIRL authors' code runs it: shared
# by dino_vit-base-p16_32xb32-amp-coslr-400e_in1k.py and
# ibot_vit-base-p16_32xb32-amp-coslr-400e_in1k.py, which add their multi-crop data bases.
# Values and sources: see
# configs/baselines/dino_vit-base-p16_32xb32-amp-coslr-400e_in1k.py.
_base_ = 'mmpretrain::_base_/default_runtime.py'
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

num_global_crops = 2
model = dict(
    type='DINO',
    base_momentum=0.004,  # teacher EMA m = 0.996, cosine to 1 over all iterations
    num_global_crops=num_global_crops,
    # The authors' HIRL code copies the student's backbone into the teacher and starts the
    # teacher head from its own random init (DINO / iBOT's repositories copy the head too:
    # 'copy').
    teacher_neck_init='independent',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True),
    backbone=dict(type='MaskedVisionTransformer', arch='b', img_size=224, patch_size=16,
                  drop_path_rate=0.1, out_type='cls_token',
                  # 96-px crops: DINO's position-embedding interpolation (scale (n + 0.1) / 14)
                  pos_embed_interpolation='scale_factor'),
    neck=dict(type='DINONeck', in_channels=768, out_channels=65536, hidden_channels=2048,
              bottleneck_channels=256, num_layers=3, use_bn=False, norm_last_layer=True),
    head=dict(type='DINOHead',
              loss=dict(type='DINOLoss', out_channels=65536,
                        num_global_crops=num_global_crops, student_temp=0.1,
                        teacher_temp=0.04, center_momentum=0.9)))

max_epochs = 400
warmup_epochs = 10
# lr = 0.00075 * batch / 256 (the reference's scaling rule) = 0.003 at 1024.
optim_wrapper = dict(
    # fp16, as the HIRL authors ran DINO and iBOT (use_fp16: True); HIRL-DINO ran fp32 and
    # configs/hirl/dino_vit-b16.py switches to OptimWrapper.
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    # The global norm of all gradients (student and, with HIRL, the semantic heads) clipped
    # at 0.3, as the HIRL authors' runner does for DINO, iBOT and their HIRL runs. The
    # original DINO / iBOT repositories clip each parameter separately instead: replace
    # this by custom_hooks += [dict(type='PerParamGradClipHook', max_norm=0.3)].
    clip_grad=dict(max_norm=0.3),
    optimizer=dict(type='AdamW', lr=0.00075 * 1024 / 256, betas=(0.9, 0.999),
                   weight_decay=0.04),
    # No weight decay on biases and LayerNorms (the reference: all 1-d parameters).
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
auto_scale_lr = dict(base_batch_size=1024, enable=False)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-9, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, eta_min=2e-6,
         by_epoch=True, begin=warmup_epochs, end=max_epochs, convert_to_iter_based=True),
    # Weight decay 0.04 -> 0.4 by a cosine over the whole run (groups at 0 stay at 0, and so
    # do groups with a fixed decay: HIRL's semantic heads, as in the authors' runner).
    dict(type='CosineAnnealingWeightDecayExceptFixed', eta_min=0.4, T_max=max_epochs,
         by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

custom_hooks = [
    # Teacher temperature 0.04 -> 0.07 linearly over the first 50 epochs, then 0.07.
    dict(type='TeacherTempWarmupHook', warmup_temp=0.04, temp=0.07, warmup_epochs=50,
         attribute='head.loss_module.teacher_temp'),
    # The prototype layer gets no update during the first 3 epochs.
    # Its gradients are dropped after the clip, as in the authors' runner.
    dict(type='FreezeLastLayerHook', module='neck.last_layer', freeze_epochs=3),
]
default_hooks = dict(
    non_finite_loss=dict(type='NonFiniteLossHook', max_consecutive=3),  # stop on NaN / inf
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))
randomness = dict(seed=0, diff_rank_seed=True)
find_unused_parameters = False
