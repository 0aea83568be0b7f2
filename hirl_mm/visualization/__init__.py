"""Pictures of a learned hierarchy: the tree of levels and a 2-D embedding map."""
from .embedding_map import draw_embedding_map, embed_2d
from .hierarchy_tree import (TreeNode, build_tree, draw_tree, level_sizes,
                             matching_label_level, tree_figsize, tree_rows)

__all__ = ['TreeNode', 'build_tree', 'draw_tree', 'level_sizes', 'matching_label_level',
           'tree_figsize', 'tree_rows', 'draw_embedding_map', 'embed_2d']
