# Fashion-MNIST study, HIRL-DINO: configs/study/dino_tiny-vit_fashion-mnist.py (a 4-block
# ViT, 2 global + 4 local crops, 10 epochs) plus the study's HIRL settings
# (configs/study/_base_/hirl_fashion-mnist.py) on the reference's embedding: the 64-d
# bottleneck of the DINO head on the first global crop's [CLS], clustered from the teacher.
_base_ = ['dino_tiny-vit_fashion-mnist.py', './_base_/hirl_fashion-mnist.py']

# The teacher's BN head keeps its own running statistics (used when the teacher is
# clustered in eval mode), as the authors' teacher, whose EMA updates parameters only.
model = dict(type='HIRL', algorithm='DINO', momentum_buffers='own', **_base_.hirl_model)
optim_wrapper = _base_.hirl_vit_head_group  # the heads' own group, weight decay 0.01
custom_hooks = _base_.custom_hooks + [_base_.hirl_clustering_hook]
