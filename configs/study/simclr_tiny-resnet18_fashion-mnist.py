# Fashion-MNIST study, baseline: SimCLR with a thin ResNet-18 on a class-balanced subset
# (800 images per class), 8 epochs, CPU-sized. configs/study/hirl-simclr_... adds HIRL to
# exactly this config; tools/benchmarks/classification/fashion_mnist_study.py runs both
# for several seeds and evaluates them (KNN, linear probe, clustering vs fine/coarse labels).
_base_ = 'mmpretrain::_base_/default_runtime.py'
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

data_root = '/usr/share/datasets/fashion-mnist'  # Debian's dataset-fashion-mnist
num_per_class = 800  # 8000 training images
dataset_type = 'HierarchicalFashionMNIST'

view_pipeline = [
    dict(type='RandomResizedCrop', scale=28, crop_ratio_range=(0.4, 1.0), backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomApply',
         transforms=[dict(type='ColorJitter', brightness=0.4, contrast=0.4)],
         prob=0.8),
]
train_pipeline = [
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs'),
]
# Images are already 28x28: the eval transform is just packing.
eval_pipeline = [dict(type='PackInputs')]

train_dataloader = dict(
    batch_size=256,
    num_workers=2,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 num_per_class=num_per_class, pipeline=train_pipeline))

model = dict(
    type='SimCLR',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor', mean=[72.9] * 3, std=[90.0] * 3, to_rgb=False),
    backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=16, base_channels=16),
    # BN, not mmpretrain's default SyncBN (no CPU kernels): these configs also run as
    # several CPU processes.
    neck=dict(type='NonLinearNeck', in_channels=128, hid_channels=256, out_channels=64,
              num_layers=2, with_avg_pool=True, norm_cfg=dict(type='BN1d')),
    head=dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'), temperature=0.2),
)

optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='SGD', lr=0.3, momentum=0.9, weight_decay=1e-4))
max_epochs = 8
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True,
                        begin=0, end=max_epochs, convert_to_iter_based=True)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

default_hooks = dict(logger=dict(type='LoggerHook', interval=5),
                     checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
# No distributed back end here: tools/train.py's launcher takes NCCL on GPUs and gloo on
# CPU-only machines (hirl_mm/utils/launch.py).
randomness = dict(seed=0)
