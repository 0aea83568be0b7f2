"""tools/analysis_tools/visualize_hierarchy.py (and hirl_report's --label-hierarchy) on the
checkpoint of a real tiny HIRL run: the drawn nodes are the checkpoint's clusters, the
pictures have the laid-out sizes, and they change when the hierarchy changes."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

from hirl_mm.evaluation import clustering_scores, purity
from hirl_mm.visualization import TreeNode, tree_figsize, tree_rows
from tiny_setup import hirl_config

TOOLS = Path(__file__).parents[2] / 'tools' / 'analysis_tools'
TREE = {'class_0': 'warm', 'class_1': 'warm', 'class_2': 'cold', 'class_3': 'cold'}
FINE = torch.tensor([c for c in range(4) for _ in range(10)])
PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]

pytestmark = pytest.mark.usefixtures('single_thread')


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f'analysis_{name}', TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def trained(image_folder, tmp_path_factory):
    """(config file, checkpoint, hierarchy file) of a 3-epoch HIRL-SimCLR run."""
    work = tmp_path_factory.mktemp('visualize')
    cfg = hirl_config('SimCLR', image_folder, work, max_epochs=3, warmup_epochs=1,
                      checkpoint_interval=3)
    cfg['report'] = dict(query_dataset=dict(type='CustomDataset', data_root=str(image_folder),
                                            pipeline=PIPELINE),
                         eval_pipeline=PIPELINE, knn_ks=[1, 5], batch_size=40)
    Runner.from_cfg(Config(cfg)).train()
    Config(cfg).dump(str(work / 'cfg.py'))
    (work / 'tree.json').write_text(json.dumps(TREE))
    return work / 'cfg.py', work / 'epoch_3.pth', work / 'tree.json'


def _draw(trained, tmp_path, checkpoint=None, name='a'):
    config, default_checkpoint, tree = trained
    return _tool('visualize_hierarchy').main([
        str(config), str(checkpoint or default_checkpoint), '--out',
        str(tmp_path / f'{name}.png'), '--embedding-out', str(tmp_path / f'{name}_map.png'),
        '--top', '2', '--children', '2', '--thumbs', '3', '--label-hierarchy', str(tree)])


def _nodes(tree: dict):
    yield tree
    for child in tree['children']:
        yield from _nodes(child)


def test_tree_nodes_are_the_checkpoints_clusters(trained, tmp_path):
    drawn = _draw(trained, tmp_path)
    state = torch.load(trained[1], weights_only=True)['state_dict']
    assign = [state[f'prototypes.im2cluster_{lvl}'] for lvl in range(3)]
    assert drawn['num_clusters'] == [12, 6, 3]
    sizes = [torch.bincount(a, minlength=k).tolist() for a, k in zip(assign, [12, 6, 3])]
    assert [drawn['sizes'][str(lvl)] if str(lvl) in drawn['sizes'] else drawn['sizes'][lvl]
            for lvl in range(3)] == sizes
    # The two largest top clusters, each with its two largest children, down to level 0.
    roots = drawn['trees']
    assert len(roots) == 2 and all(root['level'] == 2 for root in roots)
    assert [r['size'] for r in roots] == sorted(sizes[2], reverse=True)[:2]
    for root in roots:
        for node in _nodes(root):
            members = torch.nonzero(assign[node['level']] == node['cluster']).flatten()
            assert node['size'] == len(members) == sizes[node['level']][node['cluster']]
            assert len(node['nearest']) == min(3, len(members))
            assert set(node['nearest']) <= set(members.tolist())
            for child in node['children']:
                assert child['level'] == node['level'] - 1
                assert int(state[f'prototypes.parents_{child["level"]}'][child['cluster']]) \
                    == node['cluster']
            assert len(node['children']) <= 2
            # Majority label and purity over the node's images (level 1, K=6: 'fine', 4
            # classes, is the closest label level).
            if node['level'] == 1:
                counts = torch.bincount(FINE[members], minlength=4)
                assert node['label'] == f'class_{int(counts.argmax())}'
                assert node['purity'] == pytest.approx(float(counts.max()) / len(members))
    assert drawn['label_levels'] == ['fine', 'coarse']
    assert drawn['panels'] == ['learned level 0 (K=12)', 'learned level 1 (K=6)',
                               'learned level 2 (K=3)', 'labels: fine (4)',
                               'labels: coarse (2)']
    # The picture has the laid-out size (1.6 in per leaf, at 100 dpi), and an SVG beside it.
    nodes = [_as_node(root) for root in roots]
    width, height = tree_figsize(nodes, 3)
    assert Image.open(drawn['tree_png']).size == (round(width * 100), round(height * 100))
    assert Path(drawn['tree_svg']).read_text().lstrip().startswith('<?xml')
    assert Image.open(drawn['embedding_png']).size == (3 * 420, 2 * 400)
    assert json.loads((tmp_path / 'a.json').read_text())['trees'] == roots


def _as_node(tree: dict) -> TreeNode:
    return TreeNode(tree['level'], tree['cluster'], tree['size'], tree['nearest'],
                    children=[_as_node(child) for child in tree['children']])


def _leaf(cluster: int) -> TreeNode:
    return TreeNode(0, cluster, 1, [])


def test_wide_trees_wrap_into_rows():
    """Trees go side by side up to per_row leaves, then on to the next row; the picture is
    as wide as its widest row and one row taller per row."""
    trees = [TreeNode(1, k, 3, [], children=[_leaf(3 * k + i) for i in range(3)])
             for k in range(5)]  # 5 trees of 3 leaves
    rows = tree_rows(trees, per_row=7)
    assert [[t.cluster for t in row] for row in rows] == [[0, 1], [2, 3], [4]]
    assert tree_rows(trees[:1], per_row=2) == [trees[:1]]  # a wider tree keeps its row
    width, height = tree_figsize(trees, 2, per_row=7)
    one_row_width, one_row_height = tree_figsize(trees[:2], 2, per_row=7)
    assert width == one_row_width and width <= 12
    assert height > 2.9 * (one_row_height - 0.5)


def test_pictures_change_when_the_hierarchy_changes(trained, tmp_path):
    first = _draw(trained, tmp_path, name='before')
    loaded = torch.load(trained[1], weights_only=False)
    state = loaded['state_dict']
    # Another (consistent) top level: level-1 clusters regrouped under other parents.
    state['prototypes.parents_1'] = (state['prototypes.parents_1'] + 1) % 3
    state['prototypes.im2cluster_2'] = state['prototypes.parents_1'][
        state['prototypes.im2cluster_1']]
    changed = tmp_path / 'changed.pth'
    torch.save(loaded, changed)
    second = _draw(trained, tmp_path, checkpoint=changed, name='after')
    assert second['trees'] != first['trees']
    assert second['sizes'][2] != first['sizes'][2] or second['trees'][0]['children'] != \
        first['trees'][0]['children']
    before = Path(first['tree_png']).read_bytes()
    assert Path(second['tree_png']).read_bytes() != before
    assert Path(second['embedding_png']).read_bytes() != \
        Path(first['embedding_png']).read_bytes()


def test_hirl_report_scores_levels_against_the_hierarchy_file(trained, tmp_path):
    config, checkpoint, tree = trained
    out = tmp_path / 'report.json'
    assert _tool('hirl_report').main([str(config), str(checkpoint), '--out', str(out),
                                      '--label-hierarchy', str(tree)]) == 0
    report = json.loads(out.read_text())
    state = torch.load(checkpoint, weights_only=True)['state_dict']
    for level, row in enumerate(report['level_scores']):
        assign = state[f'prototypes.im2cluster_{level}']
        assert row['fine'] == clustering_scores(FINE, assign)
        assert row['coarse'] == clustering_scores(1 - FINE // 2, assign)
        assert purity(FINE, assign) > 0


@pytest.fixture(scope='module')
def flat_trained(image_folder, tmp_path_factory):
    """(config file, checkpoint) of a 2-epoch HIRL-SimCLR run on a folder without class
    sub-folders (own data without labels), with no ``report`` dict in the config."""
    work = tmp_path_factory.mktemp('flat')
    flat = work / 'images'
    flat.mkdir()
    for path in sorted(image_folder.glob('*/*.png')):
        (flat / f'{path.parent.name}_{path.name}').write_bytes(path.read_bytes())
    cfg = hirl_config('SimCLR', flat, work, max_epochs=2, warmup_epochs=1,
                      checkpoint_interval=2)
    Runner.from_cfg(Config(cfg)).train()
    Config(cfg).dump(str(work / 'cfg.py'))
    return work / 'cfg.py', work / 'epoch_2.pth'


def test_report_and_pictures_work_on_a_flat_folder(flat_trained, tmp_path, capsys):
    """No labels: the report gives the cluster statistics and says why there is no KNN or
    NMI; the pictures draw the learned levels without label panels."""
    config, checkpoint = flat_trained
    out = tmp_path / 'report.json'
    assert _tool('hirl_report').main([str(config), str(checkpoint), '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    assert 'have no labels' in printed and 'no KNN and no NMI' in printed
    report = json.loads(out.read_text())
    assert report['labelled'] is False
    assert 'level_scores' not in report and 'knn_top1' not in report
    assert [level['num_clusters'] for level in report['cluster_stats']] == [12, 6, 3]

    drawn = _tool('visualize_hierarchy').main([
        str(config), str(checkpoint), '--out', str(tmp_path / 'flat.png'),
        '--embedding-out', str(tmp_path / 'flat_map.png'), '--top', '2', '--children', '2'])
    assert 'have no labels' in capsys.readouterr().out
    assert drawn['labelled'] is False and drawn['label_levels'] == []
    assert drawn['panels'] == ['learned level 0 (K=12)', 'learned level 1 (K=6)',
                               'learned level 2 (K=3)']
    assert all('label' not in node or node['label'] is None
               for root in drawn['trees'] for node in _nodes(root))
    assert Path(drawn['tree_png']).is_file() and Path(drawn['embedding_png']).is_file()


def test_monitor_refuses_a_flat_folder_before_training(flat_trained, tmp_path):
    """The monitor needs labels: on a folder without class sub-folders it stops at
    before_train with a message saying to remove it (not mmpretrain's 'Found 0 files')."""
    config, _ = flat_trained
    cfg = Config.fromfile(str(config))
    cfg.work_dir = str(tmp_path)
    cfg.custom_hooks.append(dict(type='HierarchyMonitorHook', interval=1))
    cfg.experiment_name = f'flat_monitor_{tmp_path.name}'
    runner = Runner.from_cfg(cfg)
    with pytest.raises(ValueError, match='HierarchyMonitorHook .* has none'):
        runner.call_hook('before_train')
