# Faster R-CNN, ResNet-50-C4, Pascal VOC 07+12: fine-tunes a pre-trained (HIRL or plain
# mmpretrain SSL) ResNet-50 for detection.
#
# Reference protocol (MoCo's detectron2 VOC transfer; mmselfsup's and HIRL's schedule):
# trained on VOC2007 + VOC2012 trainval, tested on VOC2007 test; 8 GPUs x 2 images, SGD lr
# 0.02, 24k iterations with steps at 18k and 22k (100 warm-up iterations), multi-scale
# training (short side 480-800 in steps of 32, long side <= 1333), 800 px testing, SyncBN in
# the backbone and the res5 head, nothing frozen; reported: AP (VOC07 11-point AP averaged
# over IoU 0.50:0.95, pascal_voc/mAP), AP50 (pascal_voc/AP50) and AP75 (pascal_voc/AP75).
# Differences from detectron2's C4-BN recipe: no extra norm after res5 (every module that
# takes the pre-trained weights must match the checkpoint key for key).
#
# res2-res4 are the backbone (num_stages=3), res5 is the RoI head's shared head; both are
# marked for the pre-trained backbone.* weights, which must fit them exactly (checked):
#   tools/benchmarks/mmdetection/dist_train.sh \
#       configs/benchmarks/mmdetection/faster-rcnn_r50-c4_voc0712.py PRETRAIN.pth 8
# (data in data/VOCdevkit/VOC2007, VOC2012 as mmdet expects)
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50-caffe-c4_ms-18k_voc0712.py'

# Reads hirl_mm checkpoints under torch >= 2.6 (weights-only loading) in any tool.
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    # pytorch-style ResNet trained on RGB images normalised with ImageNet's statistics
    # (mmdet's C4 defaults are detectron2's caffe-style, BGR, mean-only weights).
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        style='pytorch', frozen_stages=-1, norm_cfg=norm_cfg, norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.')),
    roi_head=dict(
        shared_head=dict(
            style='pytorch', norm_cfg=norm_cfg, norm_eval=False,
            init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.'))))

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomChoiceResize',
         scales=[(1333, s) for s in range(480, 801, 32)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
# mmdet batches images of different sizes: mmengine's pseudo_collate, stated so that no
# tool's default_collate (mmpretrain's convention) can replace it.
train_dataloader = dict(
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        # VOCDataset tags its metainfo with VOC2007 / VOC2012; without ignore_keys mmdet's
        # ConcatDataset keeps a list of both metainfos instead of one dict (mmengine's own
        # refuses the mismatch), and checkpoints then store no usable dataset_meta.
        ignore_keys=['dataset_type'],
        datasets=[
            dict(type='VOCDataset', data_root={{_base_.data_root}},
                 ann_file=f'VOC{year}/ImageSets/Main/trainval.txt',
                 data_prefix=dict(sub_data_root=f'VOC{year}/'),
                 filter_cfg=dict(filter_empty_gt=True, min_size=32),
                 pipeline=train_pipeline, backend_args={{_base_.backend_args}})
            for year in (2007, 2012)
        ]))
val_dataloader = dict(collate_fn=dict(type='pseudo_collate'),
                      dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='VOCMetric', metric='mAP', eval_mode='11points',
    iou_thrs=[0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95])
test_evaluator = val_evaluator

max_iter = 24000
train_cfg = dict(max_iters=max_iter, val_interval=2000)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_iter, by_epoch=False,
         milestones=[18000, 22000], gamma=0.1),
]
default_hooks = dict(checkpoint=dict(by_epoch=False, interval=2000))
