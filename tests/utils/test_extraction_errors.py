"""Feature extraction names the samples that failed to load and a missing sample_idx,
instead of blaming the sampler or raising a bare AttributeError."""
import pytest
import torch
from mmpretrain.models.utils import ClsDataPreprocessor

from hirl_mm.utils.feature_extraction import build_extraction_loader, extract_embeddings
from tiny_setup import make_image_folder


def _model() -> torch.nn.Module:
    model = torch.nn.Module()
    model.data_preprocessor = ClsDataPreprocessor()
    return model


def _extract(root, pack: dict):
    loader = build_extraction_loader(
        dict(type='mmpretrain.CustomDataset', data_root=str(root), with_label=False,
             pipeline=[dict(type='mmpretrain.LoadImageFromFile', ignore_empty=True,
                            imdecode_backend='pillow'), pack]),
        batch_size=4)
    return extract_embeddings(_model(), loader, lambda x: x.flatten(1)[:, :3],
                              show_progress=False)


def test_a_corrupt_image_is_named(tmp_path):
    root = make_image_folder(tmp_path / 'images', per_class=2)
    bad = root / 'class_1' / '001.png'
    bad.write_bytes(bad.read_bytes()[:40])  # a truncated PNG
    torch.manual_seed(0)
    with pytest.raises(RuntimeError) as error:
        _extract(root, dict(type='mmpretrain.PackInputs'))
    message = str(error.value)
    assert f'1 of the 8 samples asked for were not delivered (sample_idx 3 ({bad}))' in \
        message.replace('for feature extraction ', '')
    assert 'LoadImageFromFile(ignore_empty=True)' in message and 'sampler' not in message


def test_a_missing_sample_idx_is_explained(tmp_path):
    root = make_image_folder(tmp_path / 'images', per_class=1)
    with pytest.raises(ValueError, match="packs no sample_idx.*'sample_idx' in the meta_keys"):
        _extract(root, dict(type='mmpretrain.PackInputs', meta_keys=('img_path', )))


def test_intact_images_extract(tmp_path):
    root = make_image_folder(tmp_path / 'images', per_class=1)
    assert _extract(root, dict(type='mmpretrain.PackInputs')).shape == (4, 3)
