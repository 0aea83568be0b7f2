# Plain MoCo baseline for configs/hirl/mocov2_r50.py: mmpretrain's config, unchanged.
_base_ = 'mmpretrain::mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py'
