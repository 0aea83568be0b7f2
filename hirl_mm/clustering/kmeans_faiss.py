"""Flat k-means with faiss (what the HIRL reference used), on GPU when faiss has one."""
from typing import Any, Optional, Tuple

import numpy as np
import torch
from torch import Tensor


def _make_index(faiss: Any, dim: int, device: torch.device) -> Tuple[Any, Optional[Any]]:
    """An exact L2 index: on the features' GPU when faiss is a GPU build, else on CPU.

    Returns the index and the GPU resources it uses (``None`` on CPU); keep both alive.
    """
    use_gpu = (device.type == 'cuda' and hasattr(faiss, 'StandardGpuResources')
               and faiss.get_num_gpus() > 0)
    if not use_gpu:
        return faiss.IndexFlatL2(dim), None
    res = faiss.StandardGpuResources()
    cfg = faiss.GpuIndexFlatConfig()
    cfg.useFloat16 = False  # exact distances, as the reference
    cfg.device = device.index if device.index is not None else torch.cuda.current_device()
    return faiss.GpuIndexFlatL2(res, dim, cfg), res


def kmeans(x: Tensor,
           k: int,
           num_iters: int = 20,
           num_redo: int = 5,
           seed: int = 0,
           max_points_per_centroid: int = 1000,
           min_points_per_centroid: int = 10,
           verbose: bool = False,
           init: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Cluster the rows of ``x`` into ``k`` clusters with ``faiss.Clustering``.

    Args:
        x (Tensor): ``[n, D]`` finite points, any device and float dtype.
        k (int): Number of clusters, ``1 <= k <= n``.
        num_iters (int): Lloyd iterations per restart.
        num_redo (int): Restarts; faiss keeps the one with the lowest objective.
        seed (int): Seed of faiss's initialisation and subsampling.
        max_points_per_centroid (int): faiss trains on a random subset of
            ``k * max_points_per_centroid`` points when ``n`` is larger.
        min_points_per_centroid (int): Below this many points per centroid faiss would
            print a warning; the caller logs its own instead (see below).
        verbose (bool): Let faiss print its progress.
        init (Tensor, optional): ``[k, D]`` centroids to start one run from (a warm
            start); the other ``num_redo - 1`` restarts start from random points and the
            lowest objective wins.

    Returns:
        tuple[Tensor, Tensor]: ``[k, D]`` float32 centroids and ``[n]`` int64 nearest-centroid
        assignment of every point, both on ``x``'s device.
    """
    import faiss

    n, dim = x.shape
    data = np.ascontiguousarray(x.detach().to('cpu', torch.float32).numpy())
    index, _gpu_resources = _make_index(faiss, dim, x.device)

    def train(num_runs: int, start: Optional[Tensor]) -> Tuple[np.ndarray, float]:
        clus = faiss.Clustering(dim, k)
        clus.niter = num_iters
        clus.nredo = num_runs
        clus.seed = seed
        clus.max_points_per_centroid = max_points_per_centroid
        # faiss uses this only to print an unconditional warning on stderr; the caller
        # warns through the logger, so keep faiss quiet.
        clus.min_points_per_centroid = max(0, min(min_points_per_centroid, n // k))
        clus.verbose = verbose
        if start is not None:  # faiss starts from centroids it is given
            faiss.copy_array_to_vector(
                start.detach().to('cpu', torch.float32).contiguous().numpy().reshape(-1),
                clus.centroids)
        index.reset()
        clus.train(data, index)
        objective = clus.iteration_stats.at(clus.iteration_stats.size() - 1).obj
        return faiss.vector_to_array(clus.centroids).reshape(k, dim).astype(np.float32), \
            objective

    if init is None:
        centroids, _ = train(num_redo, None)
    else:
        # Given centroids, faiss would continue from them in every restart: run the warm
        # start alone, then the random restarts, and keep the lower objective.
        centroids, objective = train(1, init)
        if num_redo > 1:
            cold, cold_objective = train(num_redo - 1, None)
            if cold_objective < objective:
                centroids = cold

    # Assign every point (not only the training subset) to the final centroids.
    index.reset()
    index.add(centroids)
    _, labels = index.search(data, 1)
    return (torch.from_numpy(centroids).to(x.device),
            torch.from_numpy(labels.reshape(-1).astype(np.int64)).to(x.device))
