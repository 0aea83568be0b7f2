from .hierarchical_clustering_hook import (IMAGENET_EXTRACT_PIPELINE,
                                           HierarchicalClusteringHook)

__all__ = ['HierarchicalClusteringHook', 'IMAGENET_EXTRACT_PIPELINE']
