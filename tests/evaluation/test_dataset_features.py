"""hirl_mm.evaluation.dataset_features and feature_cache: extraction and its disk cache."""
import os

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS

from hirl_mm.evaluation.dataset_features import DatasetFeatures, extract_dataset_features
from hirl_mm.evaluation.feature_cache import (CACHE_FORMAT, feature_cache_file,
                                              read_feature_cache, write_feature_cache)
from hirl_mm.evaluation.feature_model import build_feature_model

TINY_BACKBONE = dict(type='ResNet', depth=18, base_channels=8, stem_channels=8)
PREPROCESSOR = dict(type='ClsDataPreprocessor', mean=[60.0] * 3, std=[60.0] * 3, to_rgb=True)
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmpretrain')


pytestmark = pytest.mark.usefixtures('single_thread')


def _model():
    return build_feature_model(Config(dict(model=dict(backbone=TINY_BACKBONE,
                                                      data_preprocessor=PREPROCESSOR))))


def test_feature_cache_file_is_keyed_by_checkpoint_name_data_and_model(tmp_path):
    ckpt = tmp_path / 'epoch_3.pth'
    ckpt.write_bytes(b'weights')
    data = dict(type='ImageNet', split='val', pipeline=PIPELINE)
    path = feature_cache_file('cache', str(ckpt), 'val', data, dict(depth=50))
    assert os.path.basename(path).startswith('epoch_3_val_') and path.endswith('.pt')
    assert path == feature_cache_file('cache', str(ckpt), 'val', dict(data), dict(depth=50))
    assert path != feature_cache_file('cache', str(ckpt), 'train', data, dict(depth=50))
    assert path != feature_cache_file('cache', str(ckpt), 'val', dict(data, split='x'),
                                      dict(depth=50))
    assert path != feature_cache_file('cache', str(ckpt), 'val', data, dict(depth=18))
    # Another feature space of the same images (cluster_eval's prototype space).
    assert path != feature_cache_file('cache', str(ckpt), 'val_neck-prototype-space', data,
                                      dict(depth=50))
    stat = os.stat(ckpt)
    os.utime(ckpt, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # re-written
    assert path != feature_cache_file('cache', str(ckpt), 'val', data, dict(depth=50))


def test_feature_cache_round_trip_and_format_check(tmp_path):
    path = str(tmp_path / 'sub' / 'f.pt')
    write_feature_cache(path, dict(features=torch.ones(2, 3), num_classes=2))
    cached = read_feature_cache(path)
    assert cached['format'] == CACHE_FORMAT and torch.equal(cached['features'],
                                                            torch.ones(2, 3))
    assert os.listdir(tmp_path / 'sub') == ['f.pt']  # no temporary file left
    torch.save(dict(format=CACHE_FORMAT + 1), path)
    with pytest.raises(RuntimeError, match='another version'):
        read_feature_cache(path)


def test_extract_dataset_features_caches_and_reads_back(image_folder, tmp_path):
    model = _model()
    ckpt = tmp_path / 'ckpt.pth'
    ckpt.write_bytes(b'x')
    data = dict(type='CustomDataset', data_root=str(image_folder), pipeline=PIPELINE)
    kwargs = dict(batch_size=16, name='val', checkpoint=str(ckpt), cache_dir=str(tmp_path),
                  model_cfg=dict(TINY_BACKBONE), show_progress=False)
    first = extract_dataset_features(model, data, **kwargs)
    assert not first.from_cache and os.path.isfile(first.cache_file)
    assert first.features.shape == (40, 64)
    assert torch.allclose(first.features.norm(dim=1), torch.ones(40))
    assert first.labels.tolist() == [c for c in range(4) for _ in range(10)]
    assert first.num_classes == 4 and first.coarse_labels is None
    assert list(first.label_levels()) == ['fine']
    # Rows in data-set order, as one batch of the whole data set gives them.
    dataset = DATASETS.build(data)
    batch = default_collate([dataset[i] for i in range(len(dataset))])
    model.eval()
    with torch.no_grad():
        direct = F.normalize(model.embed(model.data_preprocessor(batch, False)['inputs']))
    assert torch.allclose(first.features, direct, atol=1e-5)

    second = extract_dataset_features(model, data, **kwargs)
    assert second.from_cache and second.cache_file == first.cache_file
    assert torch.equal(second.features, first.features)
    assert torch.equal(second.labels, first.labels) and second.num_classes == 4

    # Another embedding function, under another name: its own cache file.
    projection = torch.randn(64, 8)
    other = extract_dataset_features(model, data, embed=lambda x: model.embed(x) @ projection,
                                     **dict(kwargs, name='val_other'))
    assert not other.from_cache and other.cache_file != first.cache_file
    assert other.features.shape == (40, 8)
    assert torch.allclose(other.features, F.normalize(direct @ projection), atol=1e-5)


def test_dataset_features_label_levels_and_dict_round_trip():
    data = DatasetFeatures(features=torch.zeros(3, 2), labels=torch.tensor([0, 1, 2]),
                           num_classes=3, coarse_labels=torch.tensor([0, 0, 1]),
                           num_coarse_classes=2)
    levels = data.label_levels()
    assert list(levels) == ['fine', 'coarse'] and levels['coarse'][1] == 2
    back = DatasetFeatures.from_dict(data.to_dict(), cache_file='c.pt')
    assert back.from_cache and back.cache_file == 'c.pt'
    assert back.num_coarse_classes == 2 and torch.equal(back.coarse_labels, data.coarse_labels)
