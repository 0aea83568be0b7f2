# HIRL's reference settings for ResNet-50 methods (HIRL_SPEC.md, "Reference settings").
# Not a full config: method configs list it as a second base and use the two names below.
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

# Arguments HIRL adds to the wrapped algorithm's model dict.
hirl_model = dict(
    num_clusters=[30000, 10000, 1000],  # finest level first
    semantic_head=dict(
        type='SemanticPathHead',
        in_channels=2048,  # globally pooled ResNet-50 stage 4
        num_neg_path=1000,
        num_mlp_layer=2),
    feature_source='auto',  # cluster the momentum encoder's embeddings where there is one
    iter_wise_assignment=False)

# The hook that re-clusters the training set before every epoch after the warm-up.
hirl_clustering_hook = dict(
    type='HierarchicalClusteringHook',
    warmup_epochs=20,
    interval=1,
    clusterer=dict(
        type='HierarchicalKMeans',
        backend='auto',  # faiss (GPU if faiss-gpu and CUDA), else pure torch
        num_iters=20,
        num_redo=5,
        seed=0,
        max_points_per_centroid=1000,
        min_points_per_centroid=10))
