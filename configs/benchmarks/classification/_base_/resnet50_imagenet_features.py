# Shared by the frozen-feature protocols on ImageNet (knn/, clustering/): an mmpretrain
# ResNet-50 backbone (model.backbone; the classification head of the inherited model is not
# used), ImageNet normalisation (data_preprocessor) and the eval transform of HIRL (resize
# the short side to 256, center-crop 224), applied to the train and val splits.
# Data: data/imagenet/{train,val}/ and meta/{train,val}.txt as mmpretrain's ImageNet expects.
_base_ = [
    'mmpretrain::_base_/models/resnet50.py',
    'mmpretrain::_base_/datasets/imagenet_bs32.py',
]

# Reads hirl_mm checkpoints under torch >= 2.6 (weights-only loading) in any tool.
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

imagenet_train = dict(type='ImageNet', data_root='data/imagenet', split='train',
                      pipeline=_base_.test_pipeline)
imagenet_val = dict(type='ImageNet', data_root='data/imagenet', split='val',
                    pipeline=_base_.test_pipeline)
