"""A 2-D map of image embeddings, coloured by learned level and by label (matplotlib).

The map is scikit-learn's t-SNE when scikit-learn is installed (``pip install
scikit-learn``), else the first two principal components (``torch.pca_lowrank``); the
figure's title says which.
"""
from typing import List, Mapping, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = ['embed_2d', 'draw_embedding_map']


def embed_2d(features: Tensor, seed: int = 0) -> Tuple[np.ndarray, str]:
    """``[N, 2]`` coordinates of the features, and the method's name.

    Args:
        features (Tensor): ``[N, D]`` embeddings (N >= 3).
        seed (int): Seed of t-SNE's initialisation.

    Returns:
        tuple: Coordinates and ``'t-SNE'`` or ``'PCA'``.
    """
    features = features.float().cpu()
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        centred = features - features.mean(dim=0, keepdim=True)
        _, _, v = torch.pca_lowrank(centred, q=min(2, *centred.shape), center=False)
        coords = (centred @ v[:, :2]).numpy()
        if coords.shape[1] < 2:  # 1-D features
            coords = np.concatenate([coords, np.zeros_like(coords)], axis=1)
        return coords, 'PCA'
    perplexity = float(min(30, max(2, (features.shape[0] - 1) // 3)))
    coords = TSNE(n_components=2, perplexity=perplexity, init='pca',
                  random_state=seed).fit_transform(features.numpy())
    return np.asarray(coords), 't-SNE'


def draw_embedding_map(coords: np.ndarray, colourings: Mapping[str, Tensor],
                       names: Mapping[str, Sequence[str]], method: str, dpi: int = 100):
    """One scatter panel per colouring (learned levels first, then label levels).

    Args:
        coords (np.ndarray): ``[N, 2]`` from :func:`embed_2d`.
        colourings (Mapping[str, Tensor]): Panel title -> ``[N]`` integer groups.
        names (Mapping[str, Sequence[str]]): Panel title -> group names (legend, for at
            most 10 groups).
        method (str): ``'t-SNE'`` / ``'PCA'``, for the title.
        dpi (int): Resolution.

    Returns:
        matplotlib.figure.Figure: The figure (the caller saves and closes it).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels: List[str] = list(colourings)
    cols = min(len(panels), 3)
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.0 * rows), dpi=dpi,
                             squeeze=False)
    for ax, title in zip(axes.flat, panels):
        groups = colourings[title].cpu().numpy()
        num_groups = int(groups.max()) + 1 if groups.size else 1
        cmap = 'tab10' if num_groups <= 10 else 'tab20' if num_groups <= 20 \
            else 'nipy_spectral'
        scatter = ax.scatter(coords[:, 0], coords[:, 1], c=groups, cmap=cmap, s=6,
                             vmin=0, vmax=max(num_groups - 1, 1), linewidths=0)
        group_names = names.get(title)
        if group_names and num_groups <= 10:
            handles, _ = scatter.legend_elements(num=list(range(num_groups)))
            ax.legend(handles, list(group_names)[:len(handles)], fontsize=6, loc='best',
                      markerscale=0.7)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(panels):]:
        ax.axis('off')
    fig.suptitle(f'{method} of {coords.shape[0]} training images', fontsize=10)
    fig.tight_layout()
    return fig
