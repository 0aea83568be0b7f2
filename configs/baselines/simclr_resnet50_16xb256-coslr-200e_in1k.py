# Plain SimCLR baseline for configs/hirl/simclr_r50.py: mmpretrain's config, unchanged.
_base_ = 'mmpretrain::simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py'
