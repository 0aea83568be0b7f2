"""Choosing a flat k-means back end (faiss or pure torch).

Every back end is a function with the signature of :data:`KMeansFn`::

    kmeans(x, k, num_iters, num_redo, seed, max_points_per_centroid,
           min_points_per_centroid, verbose[, init]) -> (centroids [k, D] float32,
                                                         assignment [n] int64)

both on ``x``'s device; ``init`` (``[k, D]``, optional) starts one restart from given
centroids (a warm start). The sharded multi-process back end is
:mod:`.kmeans_distributed` (used through ``HierarchicalKMeans.cluster_shard``). Callers
validate ``x`` (finite, 2-D, ``1 <= k <= n``) beforehand.
"""
import importlib
from typing import Callable, Optional, Tuple

from torch import Tensor

KMeansFn = Callable[[Tensor, int, int, int, int, int, int, bool], Tuple[Tensor, Tensor]]

BACKENDS = ('auto', 'faiss', 'torch')


def faiss_import_error() -> Optional[ImportError]:
    """Try to import faiss.

    Returns:
        ImportError | None: ``None`` when faiss imports, else the error raised.
    """
    try:
        importlib.import_module('faiss')
    except ImportError as err:
        return err
    return None


def resolve_backend(backend: str) -> str:
    """Turn a requested back end into the one that will run.

    Args:
        backend (str): ``'auto'`` (faiss if importable, else torch), ``'faiss'`` or
            ``'torch'``.

    Returns:
        str: ``'faiss'`` or ``'torch'``.

    Raises:
        ValueError: ``backend`` is not a known name.
        ImportError: ``'faiss'`` was requested but faiss cannot be imported.
    """
    if backend not in BACKENDS:
        raise ValueError(f'Unknown k-means backend {backend!r}; use one of {BACKENDS}.')
    if backend == 'torch':
        return 'torch'
    err = faiss_import_error()
    if err is None:
        return 'faiss'
    if backend == 'auto':
        return 'torch'
    raise ImportError(
        f"k-means backend='faiss' was requested but faiss cannot be imported ({err}). "
        "Install it with `pip install faiss-cpu` (or faiss-gpu for CUDA), or set "
        "backend='torch' (or 'auto') to use the pure-torch k-means.") from err


def get_kmeans_fn(backend: str) -> KMeansFn:
    """The k-means function of a resolved back end.

    Args:
        backend (str): ``'faiss'`` or ``'torch'`` (see :func:`resolve_backend`).

    Returns:
        KMeansFn: The back end's ``kmeans`` function.
    """
    if backend == 'faiss':
        from .kmeans_faiss import kmeans
    elif backend == 'torch':
        from .kmeans_torch import kmeans
    else:
        raise ValueError(f"Expected a resolved backend ('faiss' or 'torch'), got {backend!r}.")
    return kmeans
