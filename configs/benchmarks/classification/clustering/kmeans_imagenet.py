# Clustering protocol of HIRL (arXiv 2205.13159, "Downstream evaluations"): k-means of the
# frozen, L2-normalised ResNet-50 features of the 50k ImageNet val images into 1000
# clusters (as many as classes); NMI, AMI, ARI and Hungarian accuracy against the labels.
# If the checkpoint holds HIRL prototypes, every learned level (nearest level-0 prototype,
# lifted through the parents) is scored against the labels too.
#
#   tools/benchmarks/classification/dist_cluster_eval.sh \
#       configs/benchmarks/classification/clustering/kmeans_imagenet.py PRETRAIN.pth 8 \
#       [--cache-dir work_dirs/features] [--out clustering.json]
_base_ = '../_base_/resnet50_imagenet_features.py'

# Read by tools/benchmarks/classification/cluster_eval.py.
cluster_eval = dict(
    dataset=_base_.imagenet_val,
    num_clusters=None,  # K = number of classes of every label level (1000)
    # The reference's k-means: faiss, 20 iterations, 5 restarts (GPU with faiss-gpu).
    clusterer=dict(type='HierarchicalKMeans', backend='auto', num_iters=20, num_redo=5,
                   seed=0),
    prototypes=True,
    batch_size=256,
    num_workers=8)
