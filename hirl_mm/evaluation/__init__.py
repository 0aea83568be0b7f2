"""Evaluation of hirl_mm: functional k-NN, linear probe and clustering metrics.

The frozen-feature tools (tools/benchmarks/classification/knn.py, cluster_eval.py,
tools/analysis_tools/hirl_report.py) share the submodules, imported from where they live
(not re-exported here, so that importing this package stays light):

- :mod:`.checkpoint_reading`: a checkpoint's state dict, meta and pre-training config;
- :mod:`.feature_model`: the backbone + data preprocessor, loaded exactly;
- :mod:`.pretrain_model`: the HIRL pre-training model rebuilt to embed images in the space
  its prototypes were clustered in;
- :mod:`.prototypes`: the prototypes a checkpoint stores (and their space), assignment;
- :mod:`.dataset_features` / :mod:`.feature_cache`: distributed extraction, disk cache;
- :mod:`.results_output`: data set names, output paths, JSON and tables;
- :mod:`.protocol_setup`: the protocols' command line and set-up.
"""
from .functional import (adjusted_mutual_info, adjusted_rand_index, clustering_scores,
                         contingency_matrix, hungarian_accuracy, normalized_mutual_info,
                         purity,
                         linear_probe_accuracy, weighted_knn_classify)

__all__ = [
    'weighted_knn_classify', 'linear_probe_accuracy', 'contingency_matrix', 'normalized_mutual_info',
    'adjusted_mutual_info', 'adjusted_rand_index', 'hungarian_accuracy', 'purity', 'clustering_scores'
]
