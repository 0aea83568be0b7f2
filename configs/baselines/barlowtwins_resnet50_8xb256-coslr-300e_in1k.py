# Plain Barlow Twins baseline for configs/hirl/barlowtwins_r50.py: mmpretrain's config, unchanged.
_base_ = 'mmpretrain::barlowtwins/barlowtwins_resnet50_8xb256-coslr-300e_in1k.py'
