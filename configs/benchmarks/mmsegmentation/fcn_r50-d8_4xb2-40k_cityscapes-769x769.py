# Semantic segmentation transfer: FCN with a dilated (output stride 8) ResNet-50 initialised
# from a HIRL / mmpretrain self-supervised checkpoint, fine-tuned on Cityscapes (2,975 train
# / 500 val images, 19 classes), 769x769 crops, 40k iterations.
# Reference protocol: mmseg's fcn_r50-d8_4xb2-40k_cityscapes-769x769 (4 GPUs x 2 images, SGD
# lr 0.01, poly decay, SyncBN, sliding-window test 769/513, align_corners), the Cityscapes
# segmentation benchmark of mmselfsup; metric: mIoU on val. Only the backbone differs:
# mmseg's ResNetV1c (deep stem) becomes a ResNet-50 with the plain conv1/bn1 stem of
# mmpretrain, so that the checkpoint's `backbone.*` weights fit it key for key; dilations,
# strides and contract_dilation are mmseg's D8 ones. Data: data/cityscapes with the
# *_labelTrainIds.png maps (mmseg's tools/dataset_converters/cityscapes.py).
# Run (4 GPUs; the run stops unless the pre-trained weights fit the backbone exactly):
#   tools/benchmarks/mmsegmentation/dist_train.sh \
#       configs/benchmarks/mmsegmentation/fcn_r50-d8_4xb2-40k_cityscapes-769x769.py \
#       work_dirs/simclr_r50/epoch_200.pth 4
_base_ = 'mmseg::fcn/fcn_r50-d8_4xb2-40k_cityscapes-769x769.py'

# Lets torch >= 2.6 load hirl_mm / mmengine checkpoints (docs/en/faq.md).
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

model = dict(
    pretrained=None,  # the base's 'open-mmlab://resnet50_v1c'
    # torchvision's ImageNet statistics, RGB: what mmpretrain pre-training normalises with.
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
    backbone=dict(
        type='ResNet',
        depth=50,
        deep_stem=False,
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False,
        # Filled in by tools/train.py --pretrained CKPT.
        init_cfg=dict(type='Pretrained', checkpoint=None, prefix='backbone.')))

# mmseg batches images of different sizes as lists (mmengine's pseudo_collate, its default).
train_dataloader = dict(collate_fn=dict(type='pseudo_collate'))
val_dataloader = dict(collate_fn=dict(type='pseudo_collate'))
test_dataloader = val_dataloader
