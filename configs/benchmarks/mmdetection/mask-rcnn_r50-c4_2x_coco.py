# Mask R-CNN, ResNet-50-C4, COCO 2017, 2x schedule: mask-rcnn_r50-c4_1x_coco.py (model, data,
# pre-trained weights) trained twice as long.
#
# Reference protocol: as the 1x config, but 24 epochs (= 180k iterations at 16 images)
# with steps at 16 and 22 (mmdet's schedule_2x).
#   tools/benchmarks/mmdetection/dist_train.sh \
#       configs/benchmarks/mmdetection/mask-rcnn_r50-c4_2x_coco.py PRETRAIN.pth 8
_base_ = './mask-rcnn_r50-c4_1x_coco.py'

train_cfg = dict(max_epochs=24)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=24, by_epoch=True, milestones=[16, 22], gamma=0.1),
]
