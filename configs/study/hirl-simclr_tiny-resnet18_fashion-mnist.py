# Fashion-MNIST study, HIRL: the baseline config plus three-level prototypes (100 / 10 / 5
# clusters, re-computed before every epoch after a 2-epoch warm-up) and the semantic path
# loss. Nothing else differs from configs/study/simclr_tiny-resnet18_fashion-mnist.py.
_base_ = './simclr_tiny-resnet18_fashion-mnist.py'

model = dict(
    type='HIRL',
    algorithm='SimCLR',
    num_clusters=[100, 10, 5],
    semantic_head=dict(type='SemanticPathHead', in_channels=128, num_neg_path=100,
                       num_mlp_layer=2))

custom_hooks = [
    dict(type='HierarchicalClusteringHook',
         warmup_epochs=2,
         interval=1,
         extract_pipeline=_base_.eval_pipeline,
         extract_batch_size=512,
         clusterer=dict(type='HierarchicalKMeans', num_iters=20, num_redo=3, seed=0)),
]
