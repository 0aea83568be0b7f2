# KNN protocol of HIRL (arXiv 2205.13159, "Downstream evaluations"; InstDisc / DINO style):
# weighted k-nearest-neighbour vote on frozen, L2-normalised ResNet-50 features, the 1.28M
# ImageNet train images as memory, the 50k val images as queries, k = 10, 20, 100, 200,
# temperature 0.07; top-1 accuracy. Reported for ResNet-50 (200 epochs): MoCo v2
# 55.74 -> HIRL 57.56, SimSiam 60.17 -> 62.68, SwAV 63.45 -> 63.99.
#
#   tools/benchmarks/classification/dist_knn.sh \
#       configs/benchmarks/classification/knn/knn_imagenet.py PRETRAIN.pth 8 \
#       [--cache-dir work_dirs/features] [--out knn.json]
# (PRETRAIN.pth: any checkpoint with the backbone under backbone., e.g.
# work_dirs/simclr_r50/epoch_200.pth; it must fit model.backbone exactly.)
_base_ = '../_base_/resnet50_imagenet_features.py'

# Read by tools/benchmarks/classification/knn.py.
knn_eval = dict(
    memory=_base_.imagenet_train,  # labelled memory bank, eval transform
    query=_base_.imagenet_val,     # labelled queries
    ks=[10, 20, 100, 200],
    temperature=0.07,
    batch_size=256,                # per process
    num_workers=8)
