"""Weighted k-nearest-neighbour classification of frozen features (InstDisc / DINO protocol)."""
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from torch import Tensor


@torch.no_grad()
def weighted_knn_classify(train_feats: Tensor,
                          train_labels: Tensor,
                          test_feats: Tensor,
                          test_labels: Tensor,
                          num_classes: int,
                          ks: Sequence[int] = (10, 20, 100, 200),
                          temperature: float = 0.07,
                          chunk_size: int = 256) -> Dict[int, float]:
    """Top-1 accuracy of a temperature-weighted k-NN vote, for several k at once.

    Features are L2-normalised and compared by cosine similarity; each of a query's k nearest
    training samples votes for its label with weight ``exp(sim / temperature)`` and the class
    with the largest summed weight wins (ties go to the lowest class index). Queries are
    processed ``chunk_size`` at a time, so memory is ``O(chunk_size * N)``, on the device of
    ``train_feats``.

    Args:
        train_feats (Tensor): Training (memory bank) features, shape (N, D).
        train_labels (Tensor): Integer labels of the training features, shape (N,).
        test_feats (Tensor): Query features, shape (M, D).
        test_labels (Tensor): Integer labels of the queries, shape (M,).
        num_classes (int): Number of classes; labels must lie in ``[0, num_classes)``.
        ks (Sequence[int]): Numbers of neighbours to evaluate. A k larger than N is clipped
            to N (with a warning); its result is still reported under the requested k.
            Defaults to (10, 20, 100, 200).
        temperature (float): Temperature of the vote weights. Defaults to 0.07.
        chunk_size (int): Number of queries per chunk. Defaults to 256.

    Returns:
        Dict[int, float]: Top-1 accuracy in percent (0-100) for each requested k.

    Raises:
        ValueError: On inconsistent shapes, empty inputs, labels out of range, or
            non-positive ``ks``, ``temperature`` or ``chunk_size``.
    """
    _check_inputs(train_feats, train_labels, test_feats, test_labels, num_classes)
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f'ks must be positive integers, got {ks}.')
    if temperature <= 0 or chunk_size < 1:
        raise ValueError(f'temperature ({temperature}) and chunk_size ({chunk_size}) must be '
                         'positive.')
    num_train = train_feats.shape[0]
    clipped = {k: min(k, num_train) for k in ks}
    if any(k > num_train for k in ks):
        print_log(f'weighted_knn_classify: k in {[k for k in ks if k > num_train]} exceeds '
                  f'the {num_train} training samples; using k={num_train} for those.',
                  logger='current', level='WARNING')
    max_k = max(clipped.values())

    device = train_feats.device
    # float32 at least: exp(1 / 0.07) ~ 1.6e6 overflows float16.
    dtype = torch.promote_types(train_feats.dtype, torch.float32)
    train = F.normalize(train_feats.to(dtype), dim=1)
    train_labels = train_labels.to(device=device, dtype=torch.long)
    test_labels = test_labels.to(device=device, dtype=torch.long)
    correct = {k: 0 for k in ks}
    for start in range(0, test_feats.shape[0], chunk_size):
        query = F.normalize(test_feats[start:start + chunk_size].to(device, dtype), dim=1)
        sims, idx = (query @ train.T).topk(max_k, dim=1)  # sorted, most similar first
        neighbour_labels = train_labels[idx]
        weights = (sims / temperature).exp()
        target = test_labels[start:start + chunk_size]
        for k in ks:
            k_eff = clipped[k]
            votes = torch.zeros(query.shape[0], num_classes, device=device, dtype=dtype)
            votes.scatter_add_(1, neighbour_labels[:, :k_eff], weights[:, :k_eff])
            correct[k] += int((votes.argmax(dim=1) == target).sum())
    num_test = test_feats.shape[0]
    return {k: 100.0 * correct[k] / num_test for k in ks}


def _check_inputs(train_feats: Tensor, train_labels: Tensor, test_feats: Tensor,
                  test_labels: Tensor, num_classes: int) -> None:
    """Raise ValueError unless shapes and labels are consistent."""
    if train_feats.ndim != 2 or test_feats.ndim != 2:
        raise ValueError(f'features must be 2-D (N, D), got {tuple(train_feats.shape)} and '
                         f'{tuple(test_feats.shape)}.')
    if train_feats.shape[1] != test_feats.shape[1]:
        raise ValueError(f'feature dimensions differ: {train_feats.shape[1]} (train) vs '
                         f'{test_feats.shape[1]} (test).')
    if train_feats.shape[0] == 0 or test_feats.shape[0] == 0:
        raise ValueError('train_feats and test_feats must be non-empty.')
    for name, labels, feats in (('train', train_labels, train_feats),
                                ('test', test_labels, test_feats)):
        if labels.ndim != 1 or labels.shape[0] != feats.shape[0]:
            raise ValueError(f'{name}_labels must have shape ({feats.shape[0]},), got '
                             f'{tuple(labels.shape)}.')
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f'{name}_labels must lie in [0, {num_classes}).')
