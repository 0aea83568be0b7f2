# End-to-end fine-tuning on ImageNet-1k of a BEiT (v1) pre-trained ViT-B/16 (every layer
# trained), with layer-wise learning-rate decay: BEiT's fine-tuning protocol for BEiT-base
# pre-trained self-supervised only (no intermediate ImageNet-22k fine-tuning), for the
# checkpoints of configs/baselines/beit_beit-base-p16_8xb256-coslr-400e_in1k.py and
# configs/hirl/beit_vit-b16.py.
# Source: microsoft/unilm beit/get_started_for_image_classification.md (BEiT-base:
# --batch_size 128 on 8 GPUs --lr 4e-3 --update_freq 1 --warmup_epochs 20 --epochs 100
# --layer_decay 0.65 --drop_path 0.1 --weight_decay 0.05 --mixup 0.8 --cutmix 1.0
# --enable_deepspeed) with the defaults of beit/run_class_finetuning.py and
# beit/modeling_finetune.py: AdamW (betas 0.9 / 0.999, eps 1e-8), peak lr 4e-3 for 1024
# images (not scaled), weight decay 0.05 except on 1-d parameters (biases, LayerNorms, layer
# scale, q / v biases), the [CLS] token and the position embedding (none here) - the
# relative position bias tables are decayed; lr warm-up from 0 over 20 epochs, then cosine
# to 1e-6 (per iteration), each parameter group's lr times its layer scale
# 0.65^(13 - depth) (depth 0: patch embedding, [CLS] token; block i: i + 1 - its own
# relative position bias table included; the pooled-feature LayerNorm and the head: 13 ->
# scale 1); drop path 0.1; relative position bias per block, each initialised from the
# pre-trained shared one; no absolute position embedding; layer scale from the checkpoint;
# classifier on the LayerNorm'ed mean of the patch tokens (use_mean_pooling: the
# pre-training final norm is dropped, fc_norm starts at weight 1 / bias 0), its weights
# truncated-normal(0.02) x 0.001 (init_scale), zero bias; train: RandomResizedCrop 224
# (bicubic) + flip, RandAugment rand-m9-mstd0.5-inc1, random erasing p 0.25 (per-pixel
# noise), Mixup 0.8 / CutMix 1.0 (one per batch, switch probability 0.5), label smoothing
# 0.1 (soft-target cross-entropy); val: resize the short side to 256 (bicubic), center-crop
# 224; reported: top-1 on val (mmpretrain's metafile: 83.1 from its 300-epoch BEiT
# ViT-B/16 with its config).
# This is mmpretrain's BEiT fine-tuning config (BEiTViT with per-block relative position
# bias, mean pooling, same constructor, augmentations and loss), with BEiT's head init,
# warm-up start and lr floor.
# Differences: the normalisation is ImageNet's mean / std (mmpretrain's BEiT fine-tuning
# and BEiT's own scripts use 0.5 / 0.5): hirl_mm's BEiT pre-training
# (mmpretrain::beit/beit_beit-base-p16_8xb256-amp-coslr-300e_in1k.py) normalises with
# ImageNet's, and the fine-tuned network must see the inputs it was pre-trained on; the
# base's RandAugment fill and random-erasing noise are already in ImageNet's statistics.
# fp32 training by default (the reference uses DeepSpeed fp16: pass --amp to
# tools/train.py). The HIRL authors' BEiT fine-tuning (hirl-team/HIRL
# configs/downstream/imagenet/finetune/beit/*.yaml: use_shared_rel_pos_bias: True) keeps
# one relative position bias shared by all blocks; this config follows BEiT's own protocol
# (one per block, each starting from the shared one).
#
#   python tools/model_converters/beit_backbone.py work_dirs/beit_vit-b16/epoch_400.pth \
#       work_dirs/beit_vit-b16/beit_backbone.pth
#   tools/benchmarks/classification/dist_train.sh \
#       configs/benchmarks/classification/imagenet/beit-base-p16_ft-8xb128-coslr-100e_in1k.py \
#       work_dirs/beit_vit-b16/beit_backbone.pth 8
# (the conversion writes the shared relative position bias into every block, as BEiT's
# fine-tuning does, and drops mask_token and the pre-training final norm; the result must
# fit the marked backbone exactly, or the run stops. A raw BEiT checkpoint is refused.)
_base_ = 'mmpretrain::beit/benchmarks/beit-base-p16_8xb128-coslr-100e_in1k.py'

# Reads hirl_mm checkpoints under torch >= 2.6 (weights-only loading) in any tool.
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

# ImageNet's mean / std, as hirl_mm's (mmpretrain's) BEiT pre-training normalises.
data_preprocessor = dict(
    num_classes=1000,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True,
)

model = dict(
    backbone=dict(
        type='BEiTViT',
        arch='base',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
        out_type='avg_featmap',  # use_mean_pooling: LayerNorm (ln2) on the mean patch token
        use_abs_pos_emb=False,
        use_rel_pos_bias=True,  # a table per block, from the shared pre-trained one
        use_shared_rel_pos_bias=False,
        init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.')),
    # BEiT's init_scale 0.001: truncated-normal(0.02) x 0.001, zero bias.
    head=dict(init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.02 * 0.001, bias=0.)]),
    # From the base: LinearClsHead(768 -> 1000), label smoothing 0.1, Mixup 0.8 / CutMix 1.0.
)

layer_decay = 0.65
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    constructor='LearningRateDecayOptimWrapperConstructor',
    # From the base (BEiT's exemptions): no weight decay on '.ln', '.bias', 'q_bias',
    # 'v_bias', '.cls_token', '.pos_embed', '.gamma'.
    paramwise_cfg=dict(layer_decay_rate=layer_decay))

max_epochs = 100
warmup_epochs = 20
param_scheduler = [
    # From ~0 (BEiT: linearly from 0; the base starts at 1e-4 x lr).
    dict(type='LinearLR', start_factor=1e-9, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    # To 1e-6 x layer scale, as the reference's schedule multiplies every group's lr (the
    # base's eta_min=1e-6 would be the same floor for every group).
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, eta_min_ratio=1e-6 / 4e-3,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
auto_scale_lr = dict(base_batch_size=1024)
