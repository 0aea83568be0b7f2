# Plain SwAV baseline for configs/hirl/swav_r50.py: mmpretrain's config, unchanged.
_base_ = 'mmpretrain::swav/swav_resnet50_8xb32-mcrop-coslr-200e_in1k-224px-96px.py'
