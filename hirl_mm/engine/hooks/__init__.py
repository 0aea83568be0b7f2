from .hierarchical_clustering_hook import (IMAGENET_EXTRACT_PIPELINE,
                                           HierarchicalClusteringHook, cluster_size_stats)

__all__ = ['HierarchicalClusteringHook', 'IMAGENET_EXTRACT_PIPELINE', 'cluster_size_stats']
