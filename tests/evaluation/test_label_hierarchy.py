"""hirl_mm.evaluation.label_hierarchy: a JSON label tree over a CustomDataset folder."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS

from hirl_mm.evaluation import clustering_scores
from hirl_mm.evaluation.dataset_features import DatasetFeatures, extract_dataset_features
from hirl_mm.evaluation.feature_model import build_feature_model
from hirl_mm.evaluation.label_hierarchy import (LabelHierarchy, dataset_label_levels,
                                                load_label_hierarchy)

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
# class_0..3 -> two groups -> one root: three levels above nothing but the folders.
TREE = {'class_0': 'warm', 'class_1': 'warm', 'class_2': 'cold', 'class_3': 'cold',
        'warm': 'all', 'cold': 'all'}
CLUSTER_EVAL = Path(__file__).parents[2] / 'tools/benchmarks/classification/cluster_eval.py'

pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmpretrain')


@pytest.fixture
def tree_file(tmp_path) -> Path:
    path = tmp_path / 'hierarchy.json'
    path.write_text(json.dumps({'level_names': ['temperature', 'root'], 'parents': TREE}))
    return path


def _folder(image_folder, tree_file, **metainfo_extra):
    return dict(type='CustomDataset', data_root=str(image_folder), pipeline=PIPELINE,
                metainfo=dict(label_hierarchy=dict(file=str(tree_file)), **metainfo_extra))


def test_custom_dataset_with_hierarchy_file_gives_every_level(image_folder, tree_file):
    dataset = DATASETS.build(_folder(image_folder, tree_file))
    levels = dataset_label_levels(dataset)
    assert list(levels) == ['fine', 'temperature', 'root']
    fine = [c for c in range(4) for _ in range(10)]
    assert levels['fine'].labels.tolist() == fine
    assert levels['fine'].class_names == ['class_0', 'class_1', 'class_2', 'class_3']
    # Groups are indexed by sorted name: cold = 0, warm = 1.
    assert levels['temperature'].class_names == ['cold', 'warm']
    assert levels['temperature'].labels.tolist() == [1 - c // 2 for c in fine]
    assert levels['root'].num_classes == 1 and levels['root'].labels.eq(0).all()


def test_every_way_of_naming_the_hierarchy_reads_the_same(image_folder, tree_file):
    expected = LabelHierarchy.from_file(str(tree_file))
    plain = tree_file.parent / 'plain.json'
    plain.write_text(json.dumps(TREE))
    forms = [str(tree_file), dict(file=str(tree_file)), json.loads(tree_file.read_text()),
             tree_file.read_text().splitlines()]
    for form in forms:
        assert load_label_hierarchy(form).parents == expected.parents
    assert LabelHierarchy.from_file(str(plain)).names(2) == ['fine', 'coarse1', 'coarse2']
    # A plain path in metainfo: mmengine reads it into lines, which are parsed back.
    dataset = DATASETS.build(dict(_folder(image_folder, tree_file),
                                  metainfo=dict(label_hierarchy=str(plain))))
    assert list(dataset_label_levels(dataset)) == ['fine', 'coarse1', 'coarse2']
    # A hierarchy passed explicitly overrides the data set's.
    one_level = {f'class_{c}': f'g{c % 2}' for c in range(4)}
    levels = dataset_label_levels(dataset, one_level)
    assert list(levels) == ['fine', 'coarse']
    assert levels['coarse'].labels.tolist() == [c % 2 for c in range(4) for _ in range(10)]


def test_short_chains_keep_their_top_ancestor():
    tree = LabelHierarchy({'a': 'x', 'b': 'y', 'x': 'root'})
    assert tree.level_classes(['a', 'b']) == [['x', 'y'], ['root', 'y']]
    levels = tree.label_levels(torch.tensor([0, 1, 1]), ['a', 'b'])
    assert levels['coarse2'].labels.tolist() == [0, 1, 1]  # 'root' < 'y'


@pytest.mark.parametrize('tree,classes,match', [
    ({'a': 'x'}, ['a', 'b'], r"no parent for 1 class.*\['b'\]"),
    ({'a': 'x', 'x': 'y', 'y': 'x'}, ['a'], 'cycle'),
    ({'a': 1}, ['a'], 'strings'),
])
def test_bad_hierarchies_are_named(tree, classes, match):
    with pytest.raises(ValueError, match=match):
        LabelHierarchy(tree).level_classes(classes)


def test_bad_files_and_level_names_say_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        LabelHierarchy.from_file(str(tmp_path / 'nope.json'))
    (tmp_path / 'bad.json').write_text('{"a": ')
    with pytest.raises(ValueError, match='not valid JSON'):
        LabelHierarchy.from_file(str(tmp_path / 'bad.json'))
    tree = LabelHierarchy({'a': 'x'}, level_names=['one', 'two'])
    with pytest.raises(ValueError, match='level_names has 2 names but.*1 level'):
        tree.label_levels(torch.tensor([0]), ['a'])


def test_features_carry_every_level_through_the_cache_and_cluster_eval(
        image_folder, tree_file, tmp_path):
    model = build_feature_model(Config(dict(model=dict(
        backbone=dict(type='ResNet', depth=18, base_channels=8, stem_channels=8),
        data_preprocessor=dict(type='ClsDataPreprocessor', mean=[60.0] * 3,
                               std=[60.0] * 3, to_rgb=True)))))
    ckpt = tmp_path / 'ckpt.pth'
    ckpt.write_bytes(b'x')
    kwargs = dict(batch_size=40, name='val', checkpoint=str(ckpt), cache_dir=str(tmp_path),
                  show_progress=False)
    data = extract_dataset_features(model, _folder(image_folder, tree_file), **kwargs)
    cached = extract_dataset_features(model, _folder(image_folder, tree_file), **kwargs)
    assert cached.from_cache
    # Another hierarchy in the same file: its labels are not read from the old cache.
    other = tmp_path / 'other.json'
    other.write_text(json.dumps({f'class_{c}': 'one' for c in range(4)}))
    edited = extract_dataset_features(model, _folder(image_folder, other), **kwargs)
    other.write_text(json.dumps({f'class_{c}': f'g{c % 2}' for c in range(4)}))
    again = extract_dataset_features(model, _folder(image_folder, other), **kwargs)
    assert not again.from_cache and again.cache_file != edited.cache_file
    assert again.label_levels()['coarse'][1] == 2 != edited.label_levels()['coarse'][1]
    for features in (data, cached):
        levels = features.label_levels()
        assert list(levels) == ['fine', 'temperature', 'root']
        assert [num for _, num in levels.values()] == [4, 2, 1]

    spec = importlib.util.spec_from_file_location('cluster_eval_for_hierarchy', CLUSTER_EVAL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    settings = tool.cluster_settings(Config(dict(cluster_eval=dict(
        dataset=_folder(image_folder, tree_file),
        clusterer=dict(type='HierarchicalKMeans', backend='torch', num_redo=1)))))
    results = tool.evaluate_clusterings(data, settings, {})
    assert results['label_levels'] == {'fine': 4, 'temperature': 2, 'root': 1}
    assert [row['num_clusters'] for row in results['kmeans']] == [4, 2, 1]
    assert set(results['kmeans'][0]['scores']) == {'fine', 'temperature', 'root'}
    # The level scores are those of the labels the hierarchy gives.
    row = results['kmeans'][1]
    assert isinstance(data, DatasetFeatures)
    assert row['scores']['temperature']['nmi'] == pytest.approx(clustering_scores(
        data.label_levels()['temperature'][0],
        tool._build_clusterer(settings['clusterer'], 2)(data.features).im2cluster[0])['nmi'])
