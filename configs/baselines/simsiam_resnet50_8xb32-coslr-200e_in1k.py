# Plain SimSiam baseline for configs/hirl/simsiam_r50.py: mmpretrain's config, unchanged.
_base_ = 'mmpretrain::simsiam/simsiam_resnet50_8xb32-coslr-200e_in1k.py'
