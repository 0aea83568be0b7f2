# End-to-end fine-tuning on ImageNet-1k of a pre-trained ViT-B/16 (every layer trained),
# with layer-wise learning-rate decay: iBOT's fine-tuning protocol for ViT-B/16, which is
# BEiT's recipe (reported: 84.0 top-1 for iBOT's ViT-B/16; the iBOT paper fine-tunes DINO
# the same way for its comparison).
# Source: bytedance/ibot run.sh (imagenet_cls: --epochs 100 --warmup_epochs 20
# --layer_decay 0.65 --mixup 0.8 --cutmix 1.0 --layer_scale_init_value 0.0 --abs_pos_emb
# --use_cls --imagenet_default_mean_and_std) with the defaults of its
# evaluation/classification_layer_decay/run_class_finetuning.py (copied from BEiT):
# 8 GPUs x 128 images, AdamW (betas 0.9 / 0.999, eps 1e-8), peak lr 4e-3 (not scaled by
# the batch), weight decay 0.05 except on 1-d parameters (biases, LayerNorms), the position
# embedding and the [CLS] token; lr warm-up from 0 over 20 epochs, then cosine to 1e-6
# (per iteration), each parameter group's lr times its layer scale 0.65^(13 - depth)
# (depth 0: patch embedding, [CLS] token, position embedding; block i: i + 1; the final
# LayerNorm and the head: 13 -> scale 1); drop path 0.1; no layer scale, learned absolute
# position embedding; classifier on the final-norm [CLS] token (--use_cls; BEiT / MAE use
# average pooling instead), its weights truncated-normal(0.02) x 0.001 (init_scale), zero
# bias; train: RandomResizedCrop 224 (bicubic) + flip, RandAugment rand-m9-mstd0.5-inc1,
# random erasing p 0.25 (per-pixel noise), Mixup 0.8 / CutMix 1.0 (one per batch, switch
# probability 0.5), label smoothing 0.1 (soft-target cross-entropy); val: resize the short
# side to 256 (bilinear), center-crop 224; ImageNet mean / std; reported: top-1 on val.
# This is mmpretrain's MAE ViT-B fine-tuning config (same constructor, augmentations and
# loss) with iBOT's values (MAE: lr 2e-3, 5 warm-up epochs, average pooling).
# Differences: fp32 training by default (the reference uses fp16 autocast: pass --amp to
# tools/train.py). The weight-decay exemptions come from the base's paramwise_cfg (zero
# decay for norms, biases, all 1-d parameters and the keys .ln, .bias, .cls_token,
# .pos_embed): exactly the reference's 1-d parameters plus its no_weight_decay() set. The
# iBOT README sweeps the peak lr; 4e-3 is the script's default (and BEiT's ViT-B value).
#
#   python tools/model_converters/teacher_backbone.py work_dirs/ibot_vit-b16/epoch_400.pth \
#       work_dirs/ibot_vit-b16/teacher_backbone.pth
#   tools/benchmarks/classification/dist_train.sh \
#       configs/benchmarks/classification/imagenet/vit-base-p16_ft-8xb128-coslr-100e_in1k.py \
#       work_dirs/ibot_vit-b16/teacher_backbone.pth 8
# (the teacher's backbone as backbone.*; it must fit the marked backbone exactly, or the run
# stops.)
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py'

# Reads hirl_mm checkpoints under torch >= 2.6 (weights-only loading) in any tool.
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        type='VisionTransformer',
        arch='b',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
        out_type='cls_token',  # --use_cls
        final_norm=True,  # the pre-trained final LayerNorm, before the [CLS] head
        init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.')),
    # From the base: LinearClsHead(768 -> 1000), TruncNormal(std 2e-5) = 0.02 x 0.001,
    # label smoothing 0.1 and Mixup 0.8 / CutMix 1.0 batch augments.
)

# BEiT's eval transform: Resize(256) with bilinear interpolation, center crop 224.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow',
         interpolation='bilinear'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

layer_decay = 0.65
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    constructor='LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=layer_decay))

max_epochs = 100
warmup_epochs = 20
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-9, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    # To 1e-6 x layer scale, as the reference's schedule multiplies every group's lr.
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, eta_min_ratio=1e-6 / 4e-3,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
auto_scale_lr = dict(base_batch_size=1024)
