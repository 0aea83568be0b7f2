"""A cheap fingerprint of a data set's list of samples, without loading any image.

State stored per sample and addressed by ``sample_idx`` (HIRL's cluster assignments) only
means something for the data list it was built on: the same samples, in the same order.
The fingerprint hashes that list (paths relative to the data root, labels, in-memory
arrays, ...), so a resume onto another data set is noticed before training on it.
"""
import hashlib
import os.path as osp
from typing import Any, Optional

import numpy as np
import torch
from mmengine.dataset import BaseDataset

__all__ = ['DIGEST_SIZE', 'dataset_fingerprint']

DIGEST_SIZE = 16  # bytes of the blake2b digest
# Added by the data set when a sample is fetched; its position in the list says the same.
_SKIPPED_KEYS = frozenset({'sample_idx'})


def dataset_fingerprint(dataset: Any) -> bytes:
    """A digest of a data set's sample list: same samples, same order -> same digest.

    mmengine ``BaseDataset`` s hash every data info as the base class returns it (not
    through subclass overrides that load or convert images): strings under the data
    root count relative to it (moving the data set keeps the digest), arrays by their
    bytes. Wrappers (``RepeatDataset``, ``ConcatDataset``, torch ``Subset`` ...) hash their
    parts and sizes; any other data set counts by its type and length only.

    Args:
        dataset: The data set (built, e.g. a DataLoader's ``dataset``).

    Returns:
        bytes: ``DIGEST_SIZE`` bytes.
    """
    digest = hashlib.blake2b(digest_size=DIGEST_SIZE)
    _hash_dataset(digest, dataset)
    return digest.digest()


def _hash_dataset(digest: 'hashlib.blake2b', dataset: Any) -> None:
    digest.update(f'{type(dataset).__name__}:{len(dataset)};'.encode())
    if isinstance(dataset, BaseDataset):
        dataset.full_init()
        root = dataset.data_root or None
        # Labels index the class names: their order counts.
        _hash_value(digest, [str(c) for c in dataset.metainfo.get('classes') or ()], None)
        for idx in range(len(dataset)):
            # The base class's info: no image decoded, no per-item conversion.
            _hash_value(digest, BaseDataset.get_data_info(dataset, idx), root)
        return
    parts = getattr(dataset, 'datasets', None)
    if isinstance(parts, (list, tuple)):  # ConcatDataset
        for part in parts:
            _hash_dataset(digest, part)
        return
    inner = getattr(dataset, 'dataset', None)
    if inner is not None:  # RepeatDataset, ClassBalancedDataset, Subset ...
        _hash_dataset(digest, inner)
        for attr in ('times', 'indices', 'repeat_indices'):
            if hasattr(dataset, attr):
                _hash_value(digest, getattr(dataset, attr), None)


def _hash_value(digest: 'hashlib.blake2b', value: Any, root: Optional[str]) -> None:
    """Feed one value in a canonical, type-tagged form (dict keys sorted)."""
    if isinstance(value, dict):
        digest.update(b'{')
        for key in sorted(value, key=str):
            if key in _SKIPPED_KEYS:
                continue
            digest.update(f'{key}='.encode())
            _hash_value(digest, value[key], root)
        digest.update(b'}')
    elif isinstance(value, (list, tuple)):
        digest.update(b'[')
        for item in value:
            _hash_value(digest, item, root)
        digest.update(b']')
    elif isinstance(value, str):
        if root and osp.isabs(value) and value.startswith(root):
            value = osp.relpath(value, root)
        digest.update(f's{len(value)}:{value}'.encode())
    elif isinstance(value, torch.Tensor):
        _hash_value(digest, value.detach().cpu().numpy(), root)
    elif isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        digest.update(f'a{array.dtype.str}{array.shape}:'.encode())
        digest.update(array.tobytes())
    elif isinstance(value, np.generic):  # as its Python value (reprs differ by numpy)
        _hash_value(digest, value.item(), root)
    elif value is None or isinstance(value, (bool, int, float)):
        digest.update(f'{type(value).__name__}:{value!r};'.encode())
    else:  # an object: its repr may hold a memory address, so only its type counts
        digest.update(f'<{type(value).__name__}>'.encode())
