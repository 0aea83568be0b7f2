import pytest
import torch

from hirl_mm.evaluation import linear_probe_accuracy


def test_separable_features_are_classified_perfectly():
    torch.manual_seed(0)
    centers = torch.randn(3, 8) * 5
    labels = torch.arange(3).repeat_interleave(20)
    feats = centers[labels] + 0.1 * torch.randn(60, 8)
    acc = linear_probe_accuracy(feats, labels, feats[::2], labels[::2], num_classes=3)
    assert acc == 100.0


def test_random_labels_are_near_chance_on_held_out_data():
    torch.manual_seed(0)
    feats, labels = torch.randn(400, 4), torch.randint(0, 4, (400, ))
    acc = linear_probe_accuracy(feats[:300], labels[:300], feats[300:], labels[300:], 4)
    assert acc < 45.0


def test_mismatched_rows():
    with pytest.raises(ValueError, match='same number of rows'):
        linear_probe_accuracy(torch.zeros(3, 2), torch.zeros(2), torch.zeros(1, 2),
                              torch.zeros(1), 2)
