import pytest
import torch

from hirl_mm.models.utils.embedding import backbone_embedding, normalized_embedding


def test_pooled_cnn_output():
    x = torch.randn(2, 8, 3, 3)
    torch.testing.assert_close(backbone_embedding((torch.randn(2, 4, 6, 6), x)),
                               x.mean(dim=(2, 3)))


def test_vit_tokens_and_vectors():
    tokens = torch.randn(2, 5, 8)
    torch.testing.assert_close(backbone_embedding((tokens, )), tokens[:, 0])
    cls = torch.randn(2, 8)
    torch.testing.assert_close(backbone_embedding([(tokens, cls)]), cls)
    assert torch.allclose(normalized_embedding(cls).norm(dim=1), torch.ones(2))


@pytest.mark.parametrize('bad', [(), torch.randn(2, 3, 4, 5, 6)])
def test_bad_outputs(bad):
    with pytest.raises(ValueError):
        backbone_embedding(bad)
