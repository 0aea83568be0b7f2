# Semantic segmentation transfer for ViT backbones (hirl_mm's DINO / iBOT: convert the
# teacher first, tools/model_converters/teacher_backbone.py): UPerNet (with an FCN auxiliary
# head) on mmpretrain's VisionTransformer ViT-B/16 initialised from the checkpoint's
# `backbone.*` weights, fine-tuned on ADE20K (20,210 train / 2,000 val images, 150
# classes), 512x512 crops, 160k iterations.
# Reference protocol: mmseg's vit_vit-b16_mln_upernet_8xb2-160k_ade20k-512x512 (8 GPUs x 2
# images, AdamW lr 6e-5, wd 0.01 (none on pos_embed / cls_token / LayerNorms), 1,500
# linear warm-up iterations then poly decay, SyncBN heads, whole-image test); metric: mIoU
# on val. Differences: the backbone is mmpretrain's ViT (mmseg's has other key names), so
# mmpretrain / HIRL ViT checkpoints load key for key, the 224-pixel position embedding
# being resized to the 32x32 patch grid on loading; blocks 4, 6, 8 and 12 feed the neck
# (out_indices 3, 5, 7, 11) and drop path is 0.1, as in the MAE / BEiT segmentation
# protocol (without its layer-wise lr decay: mmseg's constructor only knows its own BEiT /
# MAE classes). mmseg's MultiLevelNeck rescales the four maps x4, x2, x1, x0.5 for UPerHead.
# Data: data/ade/ADEChallengeData2016.
# Run (8 GPUs; the run stops unless the pre-trained weights fit the backbone exactly):
#   tools/benchmarks/mmsegmentation/dist_train.sh \
#       configs/benchmarks/mmsegmentation/upernet_vit-b16_8xb2-160k_ade20k-512x512.py \
#       work_dirs/<hirl vit-b16 run>/epoch_300.pth 8
_base_ = 'mmseg::vit/vit_vit-b16_mln_upernet_8xb2-160k_ade20k-512x512.py'

# Lets torch >= 2.6 load hirl_mm / mmengine checkpoints (docs/en/faq.md).
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

model = dict(
    pretrained=None,  # the base's 'pretrain/vit_base_patch16_224.pth'
    # torchvision's ImageNet statistics, RGB: what mmpretrain pre-training normalises with.
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        _delete_=True,
        type='mmpretrain.VisionTransformer',
        arch='base',
        img_size=(512, 512),
        patch_size=16,
        out_indices=(3, 5, 7, 11),
        out_type='featmap',  # patch tokens as (N, 768, 32, 32) maps, no [CLS]
        drop_path_rate=0.1,
        final_norm=True,
        interpolate_mode='bicubic',
        # Filled in by tools/train.py --pretrained CKPT.
        init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.')),
    neck=dict(in_channels=[768, 768, 768, 768], out_channels=768, scales=[4, 2, 1, 0.5]))

# mmpretrain's ViT names its LayerNorms ln1 / ln2 (mmseg's 'norm' key would match none).
optim_wrapper = dict(
    paramwise_cfg=dict(
        _delete_=True,
        custom_keys={
            'backbone.pos_embed': dict(decay_mult=0.),
            'backbone.cls_token': dict(decay_mult=0.),
            '.ln': dict(decay_mult=0.),
        }))

# mmseg batches images of different sizes as lists (mmengine's pseudo_collate, its default).
train_dataloader = dict(collate_fn=dict(type='pseudo_collate'))
val_dataloader = dict(collate_fn=dict(type='pseudo_collate'))
test_dataloader = val_dataloader
