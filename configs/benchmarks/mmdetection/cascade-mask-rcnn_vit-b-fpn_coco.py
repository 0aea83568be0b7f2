# Cascade Mask R-CNN, ViT-B/16 + FPN, COCO 2017, 1x schedule: fine-tunes a pre-trained ViT
# (mmpretrain's VisionTransformer key names, e.g. MoCo v3 / MAE / HIRL checkpoints) for
# detection and instance segmentation. DINO / iBOT checkpoints of hirl_mm: convert the
# teacher first (tools/model_converters/teacher_backbone.py), any other mmpretrain ViT-B/16
# SSL checkpoint loads as it is.
#
# Reference protocol (BEiT / iBOT-style COCO transfer of ViT-B/16; check the settings against
# the paper compared with): 8 GPUs x 2 images, AdamW lr 1e-4, weight decay 0.05, layer-wise
# lr decay 0.75, drop path 0.1, 12 epochs with steps at 8 and 11, multi-scale training (short
# side 480-800, long side <= 1333), 800 px testing; reported: bbox and segm mAP on val2017
# (coco/bbox_mAP, coco/segm_mAP).
# Differences: the single-scale ViT features (blocks 4, 6, 8, 12) become strides 4/8/16/32
# through mmseg's MultiLevelNeck (bilinear resize + convs, not BEiT's deconvolutions), then
# mmdet's FPN; the layer decay is spelled as per-block lr_mult (mmpretrain's layer-decay
# constructor needs a get_layer_depth on the whole model, which mmdet detectors lack), so
# weight decay also applies to the blocks' norms and biases.
#
# The ViT takes the checkpoint's backbone.* weights, which must fit it exactly (checked
# before training: same arch, patch size, final norm and class token as the pre-training;
# the position embedding is resized to the input by mmpretrain):
#   tools/benchmarks/mmdetection/dist_train.sh \
#       configs/benchmarks/mmdetection/cascade-mask-rcnn_vit-b-fpn_coco.py PRETRAIN.pth 8
_base_ = 'mmdet::cascade_rcnn/cascade-mask-rcnn_r50_fpn_1x_coco.py'

# Reads hirl_mm checkpoints under torch >= 2.6 (weights-only loading) in any tool.
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

embed_dims = 768  # ViT-B
num_layers = 12
layer_decay = 0.75
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.VisionTransformer',  # the key names of mmpretrain checkpoints
        arch='b',
        img_size=224,
        patch_size=16,
        out_indices=(3, 5, 7, 11),
        out_type='featmap',
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.')),
    neck=[
        dict(type='mmseg.MultiLevelNeck', in_channels=[embed_dims] * 4,
             out_channels=embed_dims, scales=[4, 2, 1, 0.5]),
        dict(type='FPN', in_channels=[embed_dims] * 4, out_channels=256, num_outs=5),
    ])

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomChoiceResize',
         scales=[(1333, s) for s in range(480, 801, 32)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
# mmdet batches images of different sizes: mmengine's pseudo_collate, stated so that no
# tool's default_collate (mmpretrain's convention) can replace it.
train_dataloader = dict(
    collate_fn=dict(type='pseudo_collate'), dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(collate_fn=dict(type='pseudo_collate'))
test_dataloader = val_dataloader

# Layer-wise lr decay as in mmpretrain's LearningRateDecayOptimWrapperConstructor: the
# patch embedding, class token and position embedding get decay**(L + 1), block i gets
# decay**(L - i), everything after the blocks (final norm, neck, heads) the full lr.
vit_stem_lr = dict(lr_mult=layer_decay**(num_layers + 1))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(custom_keys={
        'backbone.patch_embed': vit_stem_lr,
        'backbone.cls_token': dict(vit_stem_lr, decay_mult=0.),
        'backbone.pos_embed': dict(vit_stem_lr, decay_mult=0.),
        **{f'backbone.layers.{i}.': dict(lr_mult=layer_decay**(num_layers - i))
           for i in range(num_layers)},
    }))
