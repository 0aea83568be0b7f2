"""Hierarchical k-means: the hierarchical prototypes of HIRL."""
from .backends import BACKENDS, faiss_import_error, resolve_backend
from .hierarchical_kmeans import HierarchicalKMeans
from .result import (HierarchicalClusteringResult, cluster_size_stats,
                     format_cluster_size_stats)

__all__ = [
    'HierarchicalKMeans', 'HierarchicalClusteringResult', 'cluster_size_stats',
    'format_cluster_size_stats', 'resolve_backend', 'faiss_import_error', 'BACKENDS'
]
