# HIRL's reference settings for ResNet-50 methods (docs/en/method.md, "Reference settings").
# Not a full config: method configs list it as a second base and use the two names below.
custom_imports = dict(imports=['hirl_mm'], allow_failed_imports=False)

# Arguments HIRL adds to the wrapped algorithm's model dict.
hirl_model = dict(
    num_clusters=[30000, 10000, 1000],  # finest level first
    # As the reference: the semantic heads train on, and the prototypes cluster, the output
    # of the method's own projection head (its neck): 128-d for MoCo v2 / SimCLR / SwAV,
    # 2048-d for SimSiam, 256-d for BYOL. 'backbone' (pooled ResNet-50, 2048-d) is a variant.
    embedding='neck',
    semantic_head=dict(
        type='SemanticPathHead',
        # in_channels is derived from the embedding's width (and checked when given).
        num_neg_path=1000,
        num_mlp_layer=2),  # Linear layers per head: Linear-BN-ReLU-Linear
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

# Stops a diverging run (loss NaN / inf) before it writes a checkpoint; method configs add
# it to their default_hooks (default_hooks=dict(non_finite_loss=non_finite_loss_hook)).
non_finite_loss_hook = dict(type='NonFiniteLossHook', max_consecutive=3)
