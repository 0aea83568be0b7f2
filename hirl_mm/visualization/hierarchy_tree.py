"""Pick the part of a learned hierarchy worth drawing, and draw it as a tree (matplotlib).

Levels are drawn coarsest at the top. With large K only the ``top`` largest clusters of
the coarsest level are shown and, under every shown node, its ``children`` largest child
clusters; their trees are wrapped into rows of a screen's width. Each node shows its level
and index, its size (clustered images), a strip of the images nearest to its centroid and,
where the images are labelled, its majority label and purity.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from hirl_mm.evaluation.label_hierarchy import LabelLevel

__all__ = ['TreeNode', 'build_tree', 'matching_label_level', 'draw_tree', 'tree_figsize',
           'tree_rows', 'level_sizes']


@dataclass
class TreeNode:
    """One drawn cluster.

    Attributes:
        level (int): Learned level (0 = finest).
        cluster (int): Index of the cluster in its level.
        size (int): Number of clustered images in it.
        nearest (list[int]): Data-set indices of its images nearest to its centroid.
        label (str, optional): Majority label (of the matching label level).
        purity (float, optional): Fraction of its images with that label.
        children (list[TreeNode]): The drawn child clusters, largest first.
        x (float): Horizontal position (leaves at 0, 1, 2, ...).
    """

    level: int
    cluster: int
    size: int
    nearest: List[int]
    label: Optional[str] = None
    purity: Optional[float] = None
    children: List['TreeNode'] = field(default_factory=list)
    x: float = 0.0

    def walk(self):
        """This node and all its drawn descendants, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    def as_dict(self) -> dict:
        """A JSON-able description (children nested)."""
        return dict(level=self.level, cluster=self.cluster, size=self.size,
                    nearest=self.nearest, label=self.label, purity=self.purity,
                    children=[child.as_dict() for child in self.children])


def matching_label_level(num_clusters: int, label_levels: Mapping[str, LabelLevel]
                         ) -> Optional[str]:
    """The label level whose class count is closest to ``num_clusters`` (finer on ties)."""
    if not label_levels:
        return None
    return min(label_levels, key=lambda name: abs(label_levels[name].num_classes
                                                  - num_clusters))


def _majority(labels: Tensor, level: LabelLevel) -> tuple:
    counts = torch.bincount(labels, minlength=level.num_classes)
    best = int(counts.argmax())
    name = level.class_names[best] if level.class_names else str(best)
    return name, float(counts[best]) / max(1, labels.numel())


def build_tree(centroids: Sequence[Tensor], parents: Sequence[Tensor],
               im2cluster: Sequence[Tensor], features: Tensor,
               label_levels: Optional[Mapping[str, LabelLevel]] = None,
               top: int = 6, children: int = 3, num_nearest: int = 4) -> List[TreeNode]:
    """The drawn part of a learned hierarchy, as trees under the top clusters.

    Args:
        centroids (Sequence[Tensor]): ``[K_l, D]`` per level, finest first.
        parents (Sequence[Tensor]): ``[K_l]`` parent index per level but the top one.
        im2cluster (Sequence[Tensor]): ``[N]`` cluster of every image per level.
        features (Tensor): ``[N, D]`` L2-normalised embeddings of the clustered images in
            the centroids' space (for the nearest images).
        label_levels (Mapping[str, LabelLevel], optional): The images' labels.
        top (int): Largest top-level clusters drawn.
        children (int): Largest children drawn under each node.
        num_nearest (int): Images nearest to the centroid kept per node.

    Returns:
        list[TreeNode]: The roots, largest first, with ``x`` laid out.
    """
    label_levels = label_levels or {}
    features = features.float()

    def node(level: int, cluster: int) -> TreeNode:
        members = torch.nonzero(im2cluster[level] == cluster).flatten()
        centroid = centroids[level][cluster].float()
        sims = features[members] @ (centroid / centroid.norm().clamp_min(1e-12))
        order = sims.argsort(descending=True)[:num_nearest]
        result = TreeNode(level, cluster, int(members.numel()), members[order].tolist())
        name = matching_label_level(int(centroids[level].shape[0]), label_levels)
        if name is not None and members.numel():
            result.label, result.purity = _majority(label_levels[name].labels[members],
                                                    label_levels[name])
        if level > 0:
            kids = torch.nonzero(parents[level - 1] == cluster).flatten().tolist()
            sizes = torch.bincount(im2cluster[level - 1],
                                   minlength=int(centroids[level - 1].shape[0]))
            kids.sort(key=lambda k: (-int(sizes[k]), k))
            result.children = [node(level - 1, k) for k in kids[:children]]
        return result

    top_level = len(centroids) - 1
    sizes = torch.bincount(im2cluster[top_level], minlength=int(centroids[-1].shape[0]))
    roots = sorted(range(int(centroids[-1].shape[0])), key=lambda k: (-int(sizes[k]), k))
    trees = [node(top_level, k) for k in roots[:top]]
    _layout(trees)
    return trees


def _layout(trees: List[TreeNode]) -> None:
    """Leaves at x = 0, 1, ...; every parent centred over its children."""
    next_x = [0.0]

    def place(node: TreeNode) -> None:
        if not node.children:
            node.x = next_x[0]
            next_x[0] += 1
            return
        for child in node.children:
            place(child)
        node.x = float(np.mean([child.x for child in node.children]))

    for tree in trees:
        place(tree)


# Layout of the tree picture, in inches: every leaf gets LEAF_WIDTH, every level LEVEL_HEIGHT.
# The top clusters' trees are wrapped into rows of at most ``per_row`` leaves, so the
# picture is about a screen wide (10 leaves: 16 in, 1600 px at 100 dpi) and grows downwards.
LEAF_WIDTH = 1.6
LEVEL_HEIGHT = 1.5
ROW_PAD = 0.5  # per row, between rows
TITLE_HEIGHT = 0.5
LABEL_WIDTH = 0.9  # the 'level l / K=k' axis labels left of every row
DEFAULT_PER_ROW = 10
FONT_SIZE = 9


def _num_leaves(tree: TreeNode) -> int:
    return sum(1 for n in tree.walk() if not n.children)


def tree_rows(trees: List[TreeNode], per_row: int = DEFAULT_PER_ROW) -> List[List[TreeNode]]:
    """The trees wrapped into rows of at most ``per_row`` leaves, in order (a tree wider
    than ``per_row`` gets a row of its own)."""
    rows: List[List[TreeNode]] = []
    count = 0
    for tree in trees:
        leaves = _num_leaves(tree)
        if not rows or count + leaves > per_row:
            rows.append([])
            count = 0
        rows[-1].append(tree)
        count += leaves
    return rows


def tree_figsize(trees: List[TreeNode], num_levels: int,
                 per_row: int = DEFAULT_PER_ROW) -> tuple:
    """Figure size (inches): 1.6 in per leaf of the widest row (plus the level labels),
    1.5 in per level in every row."""
    rows = tree_rows(trees, per_row) or [[]]
    widest = max(sum(_num_leaves(tree) for tree in row) for row in rows)
    width = max(6.0, LEAF_WIDTH * max(1, widest) + LABEL_WIDTH)
    return width, len(rows) * (LEVEL_HEIGHT * num_levels + ROW_PAD) + TITLE_HEIGHT


def draw_tree(trees: List[TreeNode], num_clusters: Sequence[int],
              image_of: Callable[[int], np.ndarray], title: str = '',
              dpi: int = 100, per_row: int = DEFAULT_PER_ROW):
    """Draw the trees (coarsest level at the top of each row) with thumbnail strips.

    The trees (one per drawn top cluster, largest first) are wrapped into rows of at most
    ``per_row`` leaves; every row has the same scale, so nodes and text have one size
    throughout. Save the figure as PNG and as SVG (text stays text there: zoomable).

    Args:
        trees (list[TreeNode]): From :func:`build_tree`.
        num_clusters (Sequence[int]): ``K_l`` per level (finest first), for the axis.
        image_of (Callable[[int], np.ndarray]): Data-set index -> ``[H, W, 3]`` float
            image in [0, 1].
        title (str): Figure title.
        dpi (int): Resolution.
        per_row (int): Most leaves drawn side by side in one row.

    Returns:
        matplotlib.figure.Figure: The figure (the caller saves and closes it).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    num_levels = len(num_clusters)
    rows = tree_rows(trees, per_row) or [[]]
    figsize = tree_figsize(trees, num_levels, per_row)
    fig, axes = plt.subplots(len(rows), 1, figsize=figsize, dpi=dpi, squeeze=False)
    widest = max(1, max(sum(_num_leaves(tree) for tree in row) for row in rows))
    # Inches per data unit, so that the thumbnails stay square.
    x_inch = (figsize[0] - LABEL_WIDTH) / (widest + 0.2)
    y_inch = LEVEL_HEIGHT * num_levels / (num_levels + 0.4)
    for ax, row in zip(axes[:, 0], rows):
        _layout(row)  # leaves of this row at x = 0, 1, ...
        _draw_row(ax, [n for tree in row for n in tree.walk()], num_clusters, image_of,
                  x_inch / y_inch)
        ax.set_xlim(-0.6, widest - 0.4)
    _layout(trees)  # back to the layout build_tree returned
    if title:
        fig.suptitle(title, fontsize=FONT_SIZE + 1)
    fig.tight_layout()
    return fig


def _draw_row(ax, nodes: List[TreeNode], num_clusters: Sequence[int],
              image_of: Callable[[int], np.ndarray], aspect: float) -> None:
    """One row of trees on ``ax``; ``aspect``: inches per x unit / inches per y unit."""
    num_levels = len(num_clusters)
    # Thumbnail strips: 4 thumbnails span 0.9 of a leaf's width; square in inches.
    width_of = {id(n): 0.9 * min(1.0, len(n.nearest) / 4) for n in nodes}
    height_of = {id(n): width_of[id(n)] / max(1, len(n.nearest)) * aspect for n in nodes}
    for node in nodes:
        for child in node.children:  # from under the node's text to the child's strip
            ax.plot([node.x, child.x], [node.level - 0.42, child.level + height_of[id(child)]],
                    color='0.6', linewidth=0.8, zorder=1)
    for node in nodes:
        if node.nearest:
            strip = np.concatenate([_thumb(image_of(i)) for i in node.nearest], axis=1)
            width, height = width_of[id(node)], height_of[id(node)]
            ax.imshow(strip, extent=(node.x - width / 2, node.x + width / 2, node.level,
                                     node.level + height),
                      interpolation='nearest', zorder=2)
        text = f'L{node.level} #{node.cluster}\nn={node.size}'
        if node.label is not None:
            text += f'\n{node.label} ({node.purity:.0%})'
        ax.text(node.x, node.level - 0.06, text, ha='center', va='top', fontsize=FONT_SIZE,
                zorder=3)
    ax.set_ylim(-0.55, num_levels - 0.4)
    ax.set_aspect('auto')
    ax.set_yticks(range(num_levels))
    ax.set_yticklabels([f'level {lvl}\nK={k}' for lvl, k in enumerate(num_clusters)],
                       fontsize=FONT_SIZE)
    ax.set_xticks([])
    for side in ('top', 'right', 'bottom'):
        ax.spines[side].set_visible(False)


def _thumb(image: np.ndarray, size: int = 32) -> np.ndarray:
    """A ``[size, size, 3]`` thumbnail with a white right border."""
    tensor = torch.as_tensor(np.ascontiguousarray(image), dtype=torch.float32)
    tensor = torch.nn.functional.interpolate(tensor.permute(2, 0, 1)[None], size=(size, size),
                                             mode='bilinear', align_corners=False)[0]
    thumb = tensor.permute(1, 2, 0).clamp(0, 1).numpy()
    thumb[:, -2:] = 1.0
    return thumb


def level_sizes(im2cluster: Sequence[Tensor], num_clusters: Sequence[int]) -> Dict[int, list]:
    """``{level: [size of every cluster]}`` (what the nodes' ``n=`` show)."""
    return {level: torch.bincount(assign, minlength=k).tolist()
            for level, (assign, k) in enumerate(zip(im2cluster, num_clusters))}
