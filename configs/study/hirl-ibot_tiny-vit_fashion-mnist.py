# HIRL-iBOT at CPU size: configs/study/ibot_tiny-vit_fashion-mnist.py plus the study's
# HIRL settings, on the bottleneck of the iBOT head on the first (masked) global crop's
# [CLS], clustered from the teacher (unmasked, eval transform).
_base_ = ['ibot_tiny-vit_fashion-mnist.py', './_base_/hirl_fashion-mnist.py']

# The teacher's BN head keeps its own running statistics (used when the teacher is
# clustered in eval mode), as the authors' teacher, whose EMA updates parameters only.
model = dict(type='HIRL', algorithm='iBOT', momentum_buffers='own', **_base_.hirl_model)
optim_wrapper = _base_.hirl_vit_head_group  # the heads' own group, weight decay 0.01
custom_hooks = _base_.custom_hooks + [_base_.hirl_clustering_hook]
