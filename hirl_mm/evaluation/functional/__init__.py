"""Functional evaluation tools: k-NN, linear probe and external clustering metrics."""
from .clustering_metrics import (adjusted_mutual_info, adjusted_rand_index, clustering_scores,
                                 contingency_matrix, hungarian_accuracy, normalized_mutual_info,
                                 purity)
from .knn import weighted_knn_classify
from .linear_probe import linear_probe_accuracy

__all__ = [
    'weighted_knn_classify', 'linear_probe_accuracy', 'contingency_matrix', 'normalized_mutual_info',
    'adjusted_mutual_info', 'adjusted_rand_index', 'hungarian_accuracy', 'purity', 'clustering_scores'
]
