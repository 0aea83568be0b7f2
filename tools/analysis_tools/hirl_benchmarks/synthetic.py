"""Random inputs of the HIRL benchmark: normalised rows, hierarchies and paths."""
from typing import List, Sequence, Tuple

import torch
from torch import Tensor


def random_unit_rows(num_rows: int, dim: int, device: torch.device) -> Tensor:
    """``[num_rows, dim]`` standard normal rows, L2-normalised.

    Filled and normalised in place so that building them leaves no transient peak above
    the resident size (which would hide a measured call's peak on CPU).
    """
    rows = torch.empty(num_rows, dim, device=device).normal_()
    return rows.div_(rows.norm(dim=1, keepdim=True))


def random_hierarchy(num_clusters: Sequence[int], dim: int,
                     device: torch.device) -> Tuple[List[Tensor], List[Tensor]]:
    """Random normalised centroids per level and random parents between levels.

    Args:
        num_clusters (Sequence[int]): Clusters per level ``K_l``, finest first.
        dim (int): Centroid width ``D``.
        device (torch.device): Where the tensors live.

    Returns:
        tuple: ``(centroids, parents)``: ``L`` ``[K_l, D]`` centroids and ``L - 1``
        ``[K_l]`` indices into the next coarser level.
    """
    centroids = [random_unit_rows(k, dim, device) for k in num_clusters]
    parents = [torch.randint(k_up, (k, ), device=device)
               for k, k_up in zip(num_clusters[:-1], num_clusters[1:])]
    return centroids, parents


def random_paths(num_images: int, num_finest: int, parents: Sequence[Tensor],
                 device: torch.device) -> Tensor:
    """``[N, L]`` paths of random finest-level clusters lifted through ``parents``."""
    from hirl_mm.models.utils import lift_paths
    return lift_paths(torch.randint(num_finest, (num_images, ), device=device), parents)
