# Plain BYOL baseline for configs/hirl/byol_r50.py: mmpretrain's config, unchanged.
_base_ = 'mmpretrain::byol/byol_resnet50_16xb256-coslr-200e_in1k.py'
