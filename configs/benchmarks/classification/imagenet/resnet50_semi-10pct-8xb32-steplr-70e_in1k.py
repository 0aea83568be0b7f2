# Semi-supervised fine-tuning on 10% of ImageNet-1k's labels (about 128 images per class)
# of a pre-trained ResNet-50; as the 1% config (same reference: HIRL, arXiv 2205.13159)
# except: the 10% subset, lr 0.005 for the backbone and 0.1 for the head.
# The subset comes from
#   python tools/benchmarks/classification/make_label_subsets.py data/imagenet/meta/train.txt
#
#   tools/benchmarks/classification/dist_train_semi.sh \
#       configs/benchmarks/classification/imagenet/resnet50_semi-10pct-8xb32-steplr-70e_in1k.py \
#       PRETRAIN.pth 8
_base_ = './resnet50_semi-1pct-8xb32-steplr-70e_in1k.py'

train_dataloader = dict(dataset=dict(ann_file='meta/train_10percent.txt'))

optim_wrapper = dict(
    optimizer=dict(lr=0.005),
    paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=20.)}))  # head lr 0.1
