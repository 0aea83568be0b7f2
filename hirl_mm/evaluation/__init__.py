"""Evaluation of hirl_mm: functional k-NN, linear probe and clustering metrics."""
from .functional import (adjusted_mutual_info, adjusted_rand_index, clustering_scores,
                         contingency_matrix, hungarian_accuracy, normalized_mutual_info,
                         linear_probe_accuracy, weighted_knn_classify)

__all__ = [
    'weighted_knn_classify', 'linear_probe_accuracy', 'contingency_matrix', 'normalized_mutual_info',
    'adjusted_mutual_info', 'adjusted_rand_index', 'hungarian_accuracy', 'clustering_scores'
]
