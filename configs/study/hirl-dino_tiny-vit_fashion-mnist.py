# Fashion-MNIST study, HIRL-DINO: configs/study/dino_tiny-vit_fashion-mnist.py (a 4-block
# ViT, 2 global + 4 local crops, 10 epochs) plus the study's HIRL settings
# (configs/study/_base_/hirl_fashion-mnist.py) on the reference's embedding: the 64-d
# bottleneck of the DINO head on the first global crop's [CLS], clustered from the teacher.
_base_ = ['dino_tiny-vit_fashion-mnist.py', './_base_/hirl_fashion-mnist.py']

model = dict(type='HIRL', algorithm='DINO', **_base_.hirl_model)
custom_hooks = _base_.custom_hooks + [_base_.hirl_clustering_hook]
