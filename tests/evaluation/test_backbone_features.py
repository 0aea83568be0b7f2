"""hirl_mm.evaluation.backbone_features: what knn.py and cluster_eval.py share."""
import json
import os

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS

from hirl_mm.evaluation.backbone_features import (
    BackboneFeatureModel, DatasetFeatures, assign_to_prototypes, build_feature_model,
    dataset_name, default_output_file, describe_dataset, dump_json, extract_dataset_features,
    feature_cache_file, format_table, load_backbone_weights, load_checkpoint_state,
    read_prototypes)
from hirl_mm.utils.pretrained import PretrainedLoadingError

TINY_BACKBONE = dict(type='ResNet', depth=18, base_channels=8, stem_channels=8)
PREPROCESSOR = dict(type='ClsDataPreprocessor', mean=[60.0] * 3, std=[60.0] * 3, to_rgb=True)
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmpretrain')


@pytest.fixture(scope='module', autouse=True)
def _one_thread():
    """Thin models on a shared 2-core machine run much faster single-threaded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cfg(**backbone) -> Config:
    return Config(dict(model=dict(backbone=dict(TINY_BACKBONE, **backbone),
                                  data_preprocessor=PREPROCESSOR)))


def _save_checkpoint(path, backbone: torch.nn.Module, extra=None, drop=None):
    """An SSL-style checkpoint: backbone.* beside other modules' weights."""
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items() if k != drop}
    state['neck.fc.weight'] = torch.zeros(2, 2)
    state.update(extra or {})
    torch.save(dict(state_dict=state, meta=dict()), path)
    return str(path)


def test_build_feature_model_drops_init_cfg_and_finds_the_preprocessor():
    cfg = _cfg(init_cfg=dict(type='Pretrained', checkpoint='missing.pth', prefix='backbone.'))
    model = build_feature_model(cfg)
    assert isinstance(model, BackboneFeatureModel)
    assert type(model.data_preprocessor).__name__ == 'ClsDataPreprocessor'
    model.init_weights()  # the dropped init_cfg would fail on the missing file
    # mmpretrain's dataset bases put the preprocessor at the top level.
    cfg = Config(dict(model=dict(backbone=TINY_BACKBONE), data_preprocessor=dict(
        num_classes=4, mean=[1.0] * 3, std=[2.0] * 3)))
    model = build_feature_model(cfg)
    assert model.data_preprocessor.mean.flatten().tolist() == [1.0] * 3
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 64)
    with pytest.raises(ValueError, match='model.backbone'):
        build_feature_model(Config(dict(model=dict())))


def test_load_backbone_weights_exactly(tmp_path):
    source = build_feature_model(_cfg()).backbone
    ckpt = _save_checkpoint(tmp_path / 'ssl.pth', source,
                            extra={'prototypes.centroids_0': torch.zeros(3, 64)})
    model = build_feature_model(_cfg())
    assert load_backbone_weights(model, ckpt) == len(source.state_dict())
    for key, value in source.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    assert 'neck.fc.weight' in load_checkpoint_state(ckpt)


def test_load_backbone_weights_refuses_what_does_not_fit(tmp_path):
    source = build_feature_model(_cfg()).backbone
    model = build_feature_model(_cfg())
    missing = _save_checkpoint(tmp_path / 'missing.pth', source, drop='conv1.weight')
    with pytest.raises(PretrainedLoadingError, match='missing'):
        load_backbone_weights(model, missing)
    extra = _save_checkpoint(tmp_path / 'extra.pth', source,
                             extra={'backbone.fc.weight': torch.zeros(1)})
    with pytest.raises(PretrainedLoadingError, match='loaded by no module'):
        load_backbone_weights(model, extra)
    wider = _save_checkpoint(tmp_path / 'wider.pth',
                             build_feature_model(_cfg(base_channels=16)).backbone)
    with pytest.raises(PretrainedLoadingError, match='do not fit'):
        load_backbone_weights(model, wider)
    torch.save(dict(state_dict={'encoder.weight': torch.zeros(1)}), tmp_path / 'none.pth')
    with pytest.raises(PretrainedLoadingError, match="prefix 'backbone.'"):
        load_backbone_weights(model, str(tmp_path / 'none.pth'))


def test_read_prototypes():
    assert read_prototypes({'backbone.x': torch.zeros(1)}) is None
    state = {
        'prototypes.centroids_0': torch.eye(4), 'prototypes.centroids_1': torch.eye(4)[:2],
        'prototypes.parents_0': torch.tensor([0, 0, 1, 1]),
        'prototypes.im2cluster_0': torch.zeros(7, dtype=torch.long),
        'prototypes.num_updates': torch.tensor(0)}
    assert read_prototypes(state) is None  # saved during the warm-up: never clustered
    state['prototypes.num_updates'] = torch.tensor(3)
    centroids, parents = read_prototypes(state)
    assert [tuple(c.shape) for c in centroids] == [(4, 4), (2, 4)]
    assert [p.tolist() for p in parents] == [[0, 0, 1, 1]]
    del state['prototypes.parents_0']
    with pytest.raises(KeyError, match='parents_0'):
        read_prototypes(state)


@pytest.mark.parametrize('chunk_size', [1, 3, 4096])
def test_assign_to_prototypes_lifts_through_the_parents(chunk_size):
    centroids = [torch.eye(4), F.normalize(torch.tensor([[1., 1, 0, 0], [0, 0, 1, 1]])),
                 torch.tensor([[1., 1, 1, 1]]) / 2]
    parents = [torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0])]
    features = F.normalize(torch.eye(4)[[2, 0, 3, 1, 2]] + 0.1 * torch.rand(5, 4), dim=1)
    result = assign_to_prototypes(features, centroids, parents, chunk_size=chunk_size)
    assert result.im2cluster[0].tolist() == [2, 0, 3, 1, 2]
    assert result.im2cluster[1].tolist() == [1, 0, 1, 0, 1]
    assert result.im2cluster[2].tolist() == [0] * 5
    assert result.num_clusters == [4, 2, 1]
    with pytest.raises(ValueError, match='dimensions'):
        assign_to_prototypes(torch.rand(5, 3), centroids, parents)
    with pytest.raises(ValueError, match='parents'):
        assign_to_prototypes(features, centroids, parents[:1])


def test_feature_cache_file_is_keyed_by_checkpoint_data_and_model(tmp_path):
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
    stat = os.stat(ckpt)
    os.utime(ckpt, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # re-written
    assert path != feature_cache_file('cache', str(ckpt), 'val', data, dict(depth=50))


def test_extract_dataset_features_caches_and_reads_back(image_folder, tmp_path):
    model = build_feature_model(_cfg())
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


def test_dataset_features_label_levels():
    data = DatasetFeatures(features=torch.zeros(3, 2), labels=torch.tensor([0, 1, 2]),
                           num_classes=3, coarse_labels=torch.tensor([0, 0, 1]),
                           num_coarse_classes=2)
    levels = data.label_levels()
    assert list(levels) == ['fine', 'coarse'] and levels['coarse'][1] == 2


def test_names_and_output_paths(tmp_path):
    assert dataset_name(dict(type='ImageNet', split='val'), 'query') == 'val'
    assert dataset_name(dict(type='CustomDataset'), 'query') == 'query'
    assert describe_dataset(dict(type='ImageNet', data_root='d', split='val')) == \
        'ImageNet split=val'
    assert default_output_file('work/x/epoch_2.pth', 'knn') == \
        os.path.join(os.path.abspath('work/x'), 'epoch_2_knn.json')
    assert default_output_file('work/x/epoch_2.pth', 'knn', 'out') == \
        os.path.join('out', 'epoch_2_knn.json')
    path = dump_json(dict(a=1.5), str(tmp_path / 'sub' / 'r.json'))
    assert json.loads(open(path).read()) == dict(a=1.5)


def test_format_table():
    text = format_table(['name', 'K', 'NMI'], [['k-means', 10, 0.51234], ['level 0', 5, None]])
    lines = text.splitlines()
    assert lines[0].split() == ['name', 'K', 'NMI']
    assert lines[2].split() == ['k-means', '10', '0.5123']
    assert lines[3].split() == ['level', '0', '5', '-']
    assert len({len(line) for line in lines[:3]}) == 1  # aligned columns
