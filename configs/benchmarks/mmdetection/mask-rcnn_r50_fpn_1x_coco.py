# Mask R-CNN, ResNet-50-FPN, COCO 2017, 1x schedule: fine-tunes a pre-trained (HIRL or
# plain mmpretrain SSL) ResNet-50 for detection and instance segmentation.
#
# Reference protocol (MoCo's detectron2 transfer; mmselfsup's and HIRL's schedules): 8 GPUs x
# 2 images, SGD lr 0.02, 12 epochs (= 90k iterations) with steps at 8 and 11, multi-scale
# training (short side 640-800, long side <= 1333), 800 px testing, SyncBN in the backbone,
# the FPN and the heads (4conv-1fc box head), nothing frozen; reported: bbox and segm mAP on
# val2017 (coco/bbox_mAP, coco/segm_mAP).
#
# The backbone takes the checkpoint's backbone.* weights, which must fit it exactly
# (checked before training):
#   tools/benchmarks/mmdetection/dist_train.sh \
#       configs/benchmarks/mmdetection/mask-rcnn_r50_fpn_1x_coco.py PRETRAIN.pth 8
# (data in data/coco/ as mmdet expects; PRETRAIN.pth e.g. work_dirs/simclr_r50/epoch_200.pth)
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

# Reads hirl_mm checkpoints under torch >= 2.6 (weights-only loading) in any tool.
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        frozen_stages=-1, norm_cfg=norm_cfg, norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.')),
    neck=dict(norm_cfg=norm_cfg),
    roi_head=dict(
        bbox_head=dict(type='Shared4Conv1FCBBoxHead', norm_cfg=norm_cfg),
        mask_head=dict(norm_cfg=norm_cfg)))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomChoiceResize',
         scales=[(1333, 640), (1333, 672), (1333, 704), (1333, 736), (1333, 768),
                 (1333, 800)],
         keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
# mmdet batches images of different sizes: mmengine's pseudo_collate, stated so that no
# tool's default_collate (mmpretrain's convention) can replace it.
train_dataloader = dict(
    collate_fn=dict(type='pseudo_collate'), dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(collate_fn=dict(type='pseudo_collate'))
test_dataloader = val_dataloader
