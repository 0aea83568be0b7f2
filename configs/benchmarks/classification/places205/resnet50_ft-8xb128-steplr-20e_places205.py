# Fine-tuning on Places205 (205 scene classes) of a pre-trained ResNet-50, the transfer
# classification protocol of HIRL (arXiv 2205.13159): every layer trained, 20 epochs,
# 8 GPUs x 128 images, SGD momentum 0.9, no weight decay, lr 0.05 for the backbone and 1.0
# for the new linear head, divided by 5 at epochs 12 and 16, SyncBN; reported: top-1 on val.
# Data (ImageNet-style folders and annotation files, the 256x256 images):
#   data/places205/train/<relative paths>   data/places205/meta/train.txt  ("path label")
#   data/places205/val/<relative paths>     data/places205/meta/val.txt
#
#   tools/benchmarks/classification/dist_train.sh \
#       configs/benchmarks/classification/places205/resnet50_ft-8xb128-steplr-20e_places205.py \
#       PRETRAIN.pth 8
_base_ = '../imagenet/resnet50_ft-8xb128-steplr-20e_in1k.py'

data_root = 'data/places205'
num_classes = 205

data_preprocessor = dict(num_classes=num_classes)
model = dict(head=dict(num_classes=num_classes))

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='Places205',
        data_root=data_root,
        ann_file='meta/train.txt',
        data_prefix='train',
        pipeline=_base_.train_pipeline))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='Places205',
        data_root=data_root,
        ann_file='meta/val.txt',
        data_prefix='val',
        pipeline=_base_.test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(
    optimizer=dict(lr=0.05),
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=20.)}))  # head lr 1.0
