"""On-disk cache of extracted features, keyed by checkpoint, data set and model.

A cache file is a ``torch.save`` of a dict of tensors and numbers with a ``format``
entry (:data:`CACHE_FORMAT`); it is written atomically by rank 0 and read back
memory-mapped.
"""
import copy
import hashlib
import json
import os
import os.path as osp
from typing import Any, Dict, Optional

import torch

__all__ = ['CACHE_FORMAT', 'feature_cache_file', 'read_feature_cache', 'write_feature_cache',
           'plain_config']

CACHE_FORMAT = 1  # bump when the cached content changes


def plain_config(cfg: Any) -> Any:
    """A ConfigDict / dict as plain Python containers (for hashing)."""
    if cfg is None:
        return None
    return cfg.to_dict() if hasattr(cfg, 'to_dict') else copy.deepcopy(cfg)


def _checkpoint_identity(checkpoint: str) -> Dict[str, Any]:
    """What identifies a checkpoint's content cheaply: real path, size, modification time."""
    if '://' in checkpoint or not osp.isfile(checkpoint):
        return dict(uri=checkpoint)
    stat = os.stat(checkpoint)
    return dict(path=osp.realpath(checkpoint), size=stat.st_size, mtime_ns=stat.st_mtime_ns)


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def feature_cache_file(cache_dir: str, checkpoint: str, name: str, dataset_cfg: dict,
                       model_cfg: Optional[dict] = None) -> str:
    """Where the features of one data set under one checkpoint are cached.

    The file name is ``<checkpoint name>_<name>_<hash>.pt``; the hash covers the
    checkpoint (real path, size, modification time), the data set config (pipeline
    included) and the model config, so changing any of them misses the cache.

    Args:
        cache_dir (str): The cache folder.
        checkpoint (str): The evaluated checkpoint.
        name (str): The data set's role or split, e.g. ``'train'`` or ``'val'`` (with the
            feature space where it is not the backbone's, e.g. ``'val_prototype-space'``).
        dataset_cfg (dict): The data set config.
        model_cfg (dict, optional): The config of what embeds the images.

    Returns:
        str: The cache file's path.
    """
    stem = osp.splitext(osp.basename(checkpoint.rstrip('/')))[0] or 'checkpoint'
    key = _digest(dict(format=CACHE_FORMAT, checkpoint=_checkpoint_identity(checkpoint),
                       dataset=plain_config(dataset_cfg), model=plain_config(model_cfg)))
    return osp.join(cache_dir, f'{stem}_{name}_{key}.pt')


def read_feature_cache(cache_file: str) -> Dict[str, Any]:
    """Read a cache file memory-mapped (processes that only wait barely touch the pages).

    Args:
        cache_file (str): Written by :func:`write_feature_cache`.

    Returns:
        dict: Its content (CPU tensors), ``format`` included.

    Raises:
        RuntimeError: If another version of hirl_mm wrote it.
    """
    cached = torch.load(cache_file, map_location='cpu', weights_only=True, mmap=True)
    if cached.get('format') != CACHE_FORMAT:
        raise RuntimeError(f'{cache_file} was written by another version of hirl_mm; '
                           'delete it to extract the features again.')
    return cached


def write_feature_cache(cache_file: str, content: Dict[str, Any]) -> None:
    """Write ``content`` (plus ``format``) atomically: readers never see half a file.

    Args:
        cache_file (str): Its path; the folder is created.
        content (dict): CPU tensors and numbers.
    """
    os.makedirs(osp.dirname(osp.abspath(cache_file)), exist_ok=True)
    tmp = f'{cache_file}.tmp{os.getpid()}'
    torch.save(dict(content, format=CACHE_FORMAT), tmp)
    os.replace(tmp, cache_file)
