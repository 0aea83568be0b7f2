# Fashion-MNIST study, HIRL-MoCo v2: the MoCo v2 baseline plus the same HIRL settings as
# the SimCLR study (configs/study/_base_/hirl_fashion-mnist.py), on the 64-d projector
# output, clustered from the key (momentum) encoder as in the reference.
_base_ = ['./mocov2_tiny-resnet18_fashion-mnist.py', './_base_/hirl_fashion-mnist.py']

model = dict(type='HIRL', algorithm='MoCo', **_base_.hirl_model)
custom_hooks = [_base_.hirl_clustering_hook]
