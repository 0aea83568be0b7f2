# `make demo`: HIRL-SimCLR on a class-balanced subset of Fashion-MNIST (real images, 10
# fine classes in 5 coarse groups), a thin ResNet-18, on CPU in a few minutes. Three-level
# prototypes (100 / 10 / 5 clusters) are re-computed before every epoch after a 2-epoch
# warm-up. tools/analysis_tools/hirl_report.py then prints cluster statistics, KNN top-1 and
# the NMI of every learned level against the fine and coarse labels.
_base_ = '../study/hirl-simclr_tiny-resnet18_fashion-mnist.py'
# Stop at once if the loss turns NaN / inf, before a checkpoint is written; write
# checkpoints so that a kill at any moment leaves a resumable run (tools/train.py does this
# for every config).
default_hooks = dict(non_finite_loss=dict(type='NonFiniteLossHook', max_consecutive=3),
                     checkpoint=dict(type='AtomicCheckpointHook'))
# Warn when clustering finds (nearly) one cluster; stop after 2 such rounds in a row
# (representation collapse, e.g. from a learning rate far too high). These are the defaults.
collapse_check = dict(max_cluster_fraction=0.9, max_empty_fraction=0.5, patience=2)
# With several processes: give up on a hung process after 5 minutes (this data set's
# clustering rounds take seconds); see docs/en/troubleshooting.md to size it.
env_cfg = dict(dist_cfg=dict(timeout=300))

# Watch it learn: after every clustering round (and at the end) log the NMI / purity of
# each learned level against the fine classes and the coarse groups, and a KNN top-1 on
# 800 held-out training images (to the log and vis_data/; TensorBoard when configured).
# EpochTimerHook logs each epoch's time split into steps, data, HIRL's extraction and
# clustering, and other hooks.
custom_hooks = [
    _base_.hirl_clustering_hook,
    dict(type='HierarchyMonitorHook', interval=2, knn_k=20, knn_holdout=0.1),
    dict(type='EpochTimerHook'),
]

# Read by tools/analysis_tools/hirl_report.py: KNN memory = the training subset, queries =
# a balanced subset of the test split; NMI of the learned levels uses the training subset.
report = dict(
    query_dataset=dict(type=_base_.dataset_type, data_root=_base_.data_root, split='test',
                       num_per_class=200, pipeline=_base_.eval_pipeline),
    eval_pipeline=_base_.eval_pipeline,
    knn_ks=[10, 20, 100, 200],
    batch_size=512)
