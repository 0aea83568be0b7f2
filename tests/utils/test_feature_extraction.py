import pytest
import torch
from mmengine.dataset import default_collate
from mmpretrain.models.utils import ClsDataPreprocessor
from mmpretrain.structures import DataSample

from hirl_mm.utils.dist_utils import all_gather_rows
from hirl_mm.utils.feature_extraction import extract_embeddings, place_by_index


def test_place_by_index_orders_rows():
    rows = torch.arange(8.).view(4, 2)
    placed = place_by_index(rows, torch.tensor([2, 0, 3, 1]), 4)
    assert torch.equal(placed[2], rows[0]) and torch.equal(placed[1], rows[3])


@pytest.mark.parametrize('indices,what', [([0, 1, 1], '1 are missing, 1 repeated'),
                                          ([0, 1, 5], '1 are missing, 0 repeated and 3')])
def test_place_by_index_rejects_missing_repeated_or_out_of_range(indices, what):
    with pytest.raises(RuntimeError, match=what):
        place_by_index(torch.zeros(3, 2), torch.tensor(indices), 3)


def test_all_gather_rows_single_process_is_identity():
    data = torch.randn(3, 2)
    assert all_gather_rows(data) is data


class _Data(torch.utils.data.Dataset):
    def __init__(self, n):
        torch.manual_seed(0)
        self.images = torch.randint(0, 255, (n, 3, 4, 4), dtype=torch.uint8)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return dict(inputs=self.images[i], data_samples=DataSample(metainfo=dict(sample_idx=i)))


def test_extract_embeddings_places_by_sample_idx_and_restores_mode():
    data = _Data(7)
    # Shuffled loading: the result must still be in sample_idx order.
    loader = torch.utils.data.DataLoader(data, batch_size=3, shuffle=True,
                                         collate_fn=default_collate)
    model = torch.nn.Module()
    model.data_preprocessor = ClsDataPreprocessor()
    model.train()
    embed = lambda x: x.flatten(1)[:, :5]  # noqa: E731
    features = extract_embeddings(model, loader, embed, normalize=False, show_progress=False)
    expected = data.images.float().flatten(1)[:, :5]
    torch.testing.assert_close(features, expected)
    assert model.training
