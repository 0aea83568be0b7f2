# HIRL-iBOT at CPU size: configs/study/ibot_tiny-vit_fashion-mnist.py plus the study's
# HIRL settings, on the bottleneck of the iBOT head on the first (masked) global crop's
# [CLS], clustered from the teacher (unmasked, eval transform).
_base_ = ['ibot_tiny-vit_fashion-mnist.py', './_base_/hirl_fashion-mnist.py']

model = dict(type='HIRL', algorithm='iBOT', **_base_.hirl_model)
custom_hooks = _base_.custom_hooks + [_base_.hirl_clustering_hook]
