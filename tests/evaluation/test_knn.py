"""Tests of weighted_knn_classify."""
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from hirl_mm.evaluation import weighted_knn_classify


def _clusters(num_classes: int, per_class: int, dim: int, noise: float, seed: int):
    """Gaussian blobs around random class centres, with labels."""
    gen = torch.Generator().manual_seed(seed)
    centres = 5 * torch.randn(num_classes, dim, generator=gen)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    feats = centres[labels] + noise * torch.randn(len(labels), dim, generator=gen)
    return feats, labels


def _reference(train_feats, train_labels, test_feats, test_labels, num_classes, k, t):
    """One query at a time, straight from the definition."""
    train = F.normalize(train_feats, dim=1)
    correct = 0
    for feat, label in zip(F.normalize(test_feats, dim=1), test_labels):
        sims = train @ feat
        top = sims.argsort(descending=True)[:k]
        votes = torch.zeros(num_classes, dtype=train.dtype)
        for i in top:
            votes[train_labels[i]] += torch.exp(sims[i] / t)
        correct += int(votes.argmax() == label)
    return 100.0 * correct / len(test_labels)


def test_well_separated_features_reach_100():
    train_feats, train_labels = _clusters(5, 50, 16, 0.3, seed=0)
    gen = torch.Generator().manual_seed(1)
    # Same centres (seed 0), fresh noise for the queries.
    test_feats = train_feats[::5] + 0.3 * torch.randn(50, 16, generator=gen)
    test_labels = train_labels[::5]
    acc = weighted_knn_classify(train_feats, train_labels, test_feats, test_labels, 5,
                                ks=(1, 10, 20))
    assert acc == {1: 100.0, 10: 100.0, 20: 100.0}


@pytest.mark.parametrize('chunk_size', [1, 7, 256])
def test_matches_reference(chunk_size):
    train_feats, train_labels = _clusters(4, 30, 8, 4.0, seed=2)  # overlapping classes
    test_feats, test_labels = _clusters(4, 10, 8, 4.0, seed=3)
    test_feats = test_feats.double()  # mixed dtypes are fine
    acc = weighted_knn_classify(train_feats, train_labels, test_feats, test_labels, 4,
                                ks=(20, 3, 10), temperature=0.1, chunk_size=chunk_size)
    assert list(acc) == [3, 10, 20]
    for k, value in acc.items():
        ref = _reference(train_feats, train_labels, test_feats.float(), test_labels, 4, k, 0.1)
        assert value == pytest.approx(ref)
    assert any(value < 100 for value in acc.values())  # the test is not trivial


def test_k_larger_than_train_is_clipped_with_warning():
    train_feats, train_labels = _clusters(3, 4, 8, 0.5, seed=4)  # 12 training samples
    test_feats, test_labels = _clusters(3, 2, 8, 0.5, seed=5)
    with mock.patch('hirl_mm.evaluation.functional.knn.print_log') as log:
        acc = weighted_knn_classify(train_feats, train_labels, test_feats, test_labels, 3,
                                    ks=(5, 200))
    log.assert_called_once()
    assert log.call_args.kwargs['level'] == 'WARNING' and '200' in log.call_args.args[0]
    assert set(acc) == {5, 200}
    clipped = weighted_knn_classify(train_feats, train_labels, test_feats, test_labels, 3,
                                    ks=(12, ))
    assert acc[200] == clipped[12]


def test_invalid_inputs():
    feats, labels = _clusters(2, 5, 4, 0.1, seed=6)
    with pytest.raises(ValueError, match='dimensions differ'):
        weighted_knn_classify(feats, labels, feats[:, :3], labels, 2)
    with pytest.raises(ValueError, match='test_labels'):
        weighted_knn_classify(feats, labels, feats, labels[:3], 2)
    with pytest.raises(ValueError, match='lie in'):
        weighted_knn_classify(feats, labels, feats, labels, 1)
    with pytest.raises(ValueError, match='ks'):
        weighted_knn_classify(feats, labels, feats, labels, 2, ks=(0, ))
