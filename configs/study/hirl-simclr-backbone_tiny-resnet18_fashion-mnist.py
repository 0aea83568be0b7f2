# Fashion-MNIST study, HIRL on the pooled backbone (128-d) instead of the projector: the
# `embedding='backbone'` variant, otherwise identical to hirl-simclr_....
_base_ = './hirl-simclr_tiny-resnet18_fashion-mnist.py'

model = dict(embedding='backbone')
