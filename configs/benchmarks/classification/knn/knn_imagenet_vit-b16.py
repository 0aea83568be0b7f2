# KNN protocol for a ViT-B/16 (DINO / iBOT teacher backbones): weighted k-nearest-neighbour
# vote on the frozen, L2-normalised [CLS] token (after the final LayerNorm), the 1.28M
# ImageNet train images as memory, the 50k val images as queries, k = 10, 20, 100, 200,
# temperature 0.07; top-1 accuracy. Eval transform: resize the short side to 256
# (bicubic, PIL), center-crop 224, ImageNet mean / std.
# Source: facebookresearch/dino eval_knn.py (defaults: nb_knn 10 20 100 200, temperature
# 0.07, Resize(256, interpolation=3) + CenterCrop(224), the teacher's [CLS] output);
# bytedance/ibot evaluation/eval_knn.py with avgpool_patchtokens 0 for ViT-B (run.sh) is
# the same. Reported (k = 20) for ViT-B/16: DINO 76.1 (README), iBOT 77.1.
# Differences: none known; knn.py is HIRL's implementation of the same vote
# (knn/knn_imagenet.py is the ResNet-50 version).
#
#   python tools/model_converters/teacher_backbone.py work_dirs/dino_vit-b16/epoch_400.pth \
#       work_dirs/dino_vit-b16/teacher_backbone.pth
#   tools/benchmarks/classification/dist_knn.sh \
#       configs/benchmarks/classification/knn/knn_imagenet_vit-b16.py \
#       work_dirs/dino_vit-b16/teacher_backbone.pth 8 [--cache-dir work_dirs/features]
# (the teacher's backbone as backbone.*; it must fit model.backbone exactly.)
_base_ = 'mmpretrain::_base_/datasets/imagenet_bs32_pil_resize.py'

# Reads hirl_mm checkpoints under torch >= 2.6 (weights-only loading) in any tool.
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

# Read by knn.py: the backbone (its init_cfg is ignored, the weights come from the
# checkpoint) and the normalisation of the inherited data_preprocessor (ImageNet mean /
# std, RGB).
model = dict(
    backbone=dict(type='VisionTransformer', arch='b', img_size=224, patch_size=16,
                  out_type='cls_token', final_norm=True))

eval_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
imagenet_train = dict(type='ImageNet', data_root='data/imagenet', split='train',
                      pipeline=eval_pipeline)
imagenet_val = dict(type='ImageNet', data_root='data/imagenet', split='val',
                    pipeline=eval_pipeline)
# Other tools reading the config's data loaders see the same transform.
val_dataloader = dict(dataset=dict(pipeline=eval_pipeline))
test_dataloader = val_dataloader

knn_eval = dict(
    memory=imagenet_train,  # labelled memory bank, eval transform
    query=imagenet_val,     # labelled queries
    ks=[10, 20, 100, 200],
    temperature=0.07,
    batch_size=128,         # per process, as eval_knn.py
    num_workers=8)
