# HIRL's reference settings for ViT-B/16 methods (docs/en/method.md, "Reference settings";
# hirl-team/HIRL configs/pretrain/hirl/hirl_{mocov3,dino,ibot}_vit_base_400eps.yaml).
# Not a full config: method configs list it as a second base and use the two names below,
# overriding what their reference run changes (MoCo v3: 5-layer heads; iBOT: K_2 = 1000).
# No custom_imports here: DINO / iBOT's baselines already set it, and mmengine refuses a key
# that two bases define; a config whose other base lacks it sets it itself (MoCo v3's).

# Arguments HIRL adds to the wrapped algorithm's model dict.
hirl_model = dict(
    num_clusters=[30000, 10000, 5000],  # finest level first (MoCo v3, DINO)
    # As the reference (train_emb='vit_cls'): the semantic heads train on, and the
    # prototypes cluster, the method's projection of [CLS] (its neck): 256-d for MoCo v3's
    # projector and for the DINO / iBOT head's bottleneck.
    embedding='neck',
    semantic_head=dict(
        type='SemanticPathHead',
        # in_channels is derived from the embedding's width (and checked when given).
        num_neg_path=100,
        num_mlp_layer=2),  # Linear layers per head: Linear-BN-ReLU-Linear
    feature_source='auto',  # cluster the momentum encoder / teacher, as the reference
    iter_wise_assignment=False)

# The hook that re-clusters the training set before every epoch after the warm-up. Its
# default extraction pipeline is the reference's eval transform for every method, ViTs
# included (hirl/runners/pretrain/hirl.py): resize the short edge to 256 (bilinear),
# center-crop 224.
hirl_clustering_hook = dict(
    type='HierarchicalClusteringHook',
    warmup_epochs=40,
    interval=1,
    clusterer=dict(
        type='HierarchicalKMeans',
        backend='auto',  # faiss (GPU if faiss-gpu and CUDA), else pure torch
        num_iters=20,
        num_redo=5,
        seed=0,
        max_points_per_centroid=1000,
        min_points_per_centroid=10))

# The semantic heads' optimiser group, as the authors' runner adds it
# (optimizer.add_param_group with the optimizer's construction defaults): one group of every
# head parameter at one constant weight decay, which the weight-decay schedule leaves alone
# (CosineAnnealingWeightDecayExceptFixed); the lr schedule applies to it. DINO / iBOT: 0.01
# (their AdamW is built with the lr only: AdamW's default); MoCo v3 and BEiT override it
# with the decay their optimizer is built with (0.1, 0.05). Method configs merge it into
# their optim_wrapper.
hirl_head_group = dict(
    constructor='FixedDecayGroupOptimWrapperConstructor',
    paramwise_cfg=dict(fixed_decay_groups=dict(semantic_head=dict(weight_decay=0.01))))

# Stops a diverging run (loss NaN / inf) before it writes a checkpoint; method configs add
# it to their default_hooks (default_hooks=dict(non_finite_loss=non_finite_loss_hook)).
non_finite_loss_hook = dict(type='NonFiniteLossHook', max_consecutive=3)
