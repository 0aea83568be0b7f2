"""FeatureBank: rows written by training steps, ownership and the samples no step saw."""
import pytest
import torch
from torch import nn

from hirl_mm.clustering.feature_bank import FeatureBank


def test_rows_are_normalised_placed_by_sample_idx_and_missing_reported():
    bank = FeatureBank(capacity=8, dtype=torch.float16)
    bank.reset(epoch=3)
    first, second = torch.randn(3, 4), torch.randn(3, 4)
    bank.add(torch.tensor([5, 0, 2]), first)
    bank.add(torch.tensor([7, 1, 0]), second)  # sample 0 again: its last row wins
    assert len(bank) == 6 and bank.epoch == 3
    shard = bank.shard(num_samples=9)
    assert shard.features.dtype == torch.float16
    rows = dict(zip(shard.sample_idx.tolist(), shard.features.float()))
    assert sorted(rows) == [0, 1, 2, 5, 7]
    expected = {5: first[0], 2: first[2], 7: second[0], 1: second[1], 0: second[2]}
    for idx, row in expected.items():
        torch.testing.assert_close(rows[idx], nn.functional.normalize(row, dim=0),
                                   atol=1e-3, rtol=1e-3)
    assert shard.missing.tolist() == [3, 4, 6, 8]


def test_reset_forgets_the_previous_epoch_and_capacity_is_enforced():
    bank = FeatureBank(capacity=4)
    bank.reset(0)
    bank.add(torch.tensor([0, 1, 2]), torch.randn(3, 2))
    bank.reset(1)
    assert len(bank) == 0
    bank.add(torch.tensor([3]), torch.randn(1, 2))
    assert bank.shard(4).sample_idx.tolist() == [3]
    with pytest.raises(RuntimeError, match='holds 4 rows per rank'):
        bank.add(torch.arange(4), torch.randn(4, 2))
    with pytest.raises(RuntimeError, match='outside 0..2'):
        bank.shard(3)
