# HIRL settings of the Fashion-MNIST study (not a full config: the study's HIRL configs list
# it as a second base and use the two names below). Three-level prototypes (100 / 10 / 5
# clusters) re-computed before every epoch after a 2-epoch warm-up, 100 negative paths, on
# the reference's embedding (the method's projector output, its neck).
hirl_model = dict(
    num_clusters=[100, 10, 5],
    embedding='neck',
    semantic_head=dict(type='SemanticPathHead', num_neg_path=100, num_mlp_layer=2))

# HIRL-DINO / HIRL-iBOT / HIRL-MoCo v3 / HIRL-BEiT (the ViT studies): the semantic heads
# in an optimiser group of their own at a constant weight decay, as the authors' runner
# adds them (configs/hirl/_base_/hirl_vit-b16.py); merged into optim_wrapper.
hirl_vit_head_group = dict(
    constructor='FixedDecayGroupOptimWrapperConstructor',
    paramwise_cfg=dict(fixed_decay_groups=dict(semantic_head=dict(weight_decay=0.01))))

hirl_clustering_hook = dict(
    type='HierarchicalClusteringHook',
    warmup_epochs=2,
    interval=1,
    extract_pipeline=[dict(type='PackInputs')],  # the images are already 28x28
    extract_batch_size=512,
    clusterer=dict(type='HierarchicalKMeans', num_iters=20, num_redo=3, seed=0))
