# Fashion-MNIST study, HIRL-SimCLR: the SimCLR baseline plus HIRL's prototypes and semantic
# path loss (configs/study/_base_/hirl_fashion-mnist.py), on the 64-d projector output.
# Nothing else differs from configs/study/simclr_tiny-resnet18_fashion-mnist.py.
_base_ = ['./simclr_tiny-resnet18_fashion-mnist.py', './_base_/hirl_fashion-mnist.py']

model = dict(type='HIRL', algorithm='SimCLR', **_base_.hirl_model)
custom_hooks = [_base_.hirl_clustering_hook]
