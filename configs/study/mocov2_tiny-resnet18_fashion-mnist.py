# Fashion-MNIST study, baseline: MoCo v2 (the paper's main CNN method) with the thin
# ResNet-18 of the SimCLR study, same data, augmentations, epochs and batch. Small-scale
# MoCo settings (as in the usual CIFAR recipes): 4096 keys in the queue, key encoder EMA
# 0.99, temperature 0.1, SGD lr 0.06, weight decay 5e-4.
_base_ = './simclr_tiny-resnet18_fashion-mnist.py'

model = dict(
    _delete_=True,
    type='MoCo',
    queue_len=4096,
    feat_dim=64,
    momentum=0.01,  # mmpretrain's convention: weight of the online encoder in the EMA
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor', mean=[72.9] * 3, std=[90.0] * 3, to_rgb=False),
    backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=16, base_channels=16),
    neck=dict(type='MoCoV2Neck', in_channels=128, hid_channels=256, out_channels=64,
              with_avg_pool=True),
    head=dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'), temperature=0.1),
)

optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='SGD', lr=0.06, momentum=0.9, weight_decay=5e-4))
