"""Classification protocols (configs/benchmarks/classification, tools/benchmarks/classification).

* Configs (fast): every training config inherits mmpretrain's, marks exactly the backbone
  for the pre-trained weights (``checkpoint=None``, filled by ``--pretrained``) and keeps
  the reference protocol's settings; the semi-supervised configs read the files that
  make_label_subsets.py writes; the KNN / clustering configs hold their sections.
* End to end (``slow``) on a tiny ImageNet-style folder (4 classes of generated PNGs,
  ``train/`` + ``val/`` + ``meta/*.txt``) and a checkpoint of a short HIRL pre-training of a
  thin ResNet-18 (three-level prototypes):

  - knn.py in-process (feature cache written, then read back) and through dist_knn.sh with
    two gloo processes: the same features and accuracies;
  - cluster_eval.py on a data set with coarse labels: k-means with K = 4 and K = 2, and
    HIRL's three learned levels, each scored against the fine and the coarse labels (the
    scores recomputed here from the cached prototype-space features and the checkpoint's
    prototypes); a plain (prototype-free) checkpoint is evaluated too;
  - the linear probe through dist_train_linear.sh (tools/train.py --pretrained): the
    backbone keeps the pre-trained weights exactly, the head trains, accuracy is reported;
  - fine-tuning, 1% / 10% semi-supervised (on subsets written by make_label_subsets.py) and
    Places205 fine-tuning through tools/train.py --pretrained, one epoch each.
* Learned levels in their own space (fast, no training: a tiny HIRL-SimCLR model whose
  prototypes cluster the training images once): cluster_eval.py scores the levels of an
  ``embedding='neck'`` checkpoint with the neck embeddings of the pre-training model rebuilt
  from the checkpoint's config (or ``--pretrain-config``), cached apart from the backbone
  features; a legacy checkpoint (no recorded space, backbone-width prototypes) with the
  backbone features; tools/analysis_tools/hirl_report.py reports on both.
"""
import copy
import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict, List

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmpretrain.datasets import CustomDataset

from hirl_mm.clustering import HierarchicalKMeans
from hirl_mm.datasets.label_subsets import subset_file_name
from hirl_mm.evaluation import clustering_scores
from hirl_mm.registry import DATASETS, MODELS
from hirl_mm.utils.feature_extraction import build_extraction_loader, extract_embeddings
from hirl_mm.utils.pretrained import inject_pretrained
from tiny_setup import EMBED_DIM, NECK_DIM, hirl_config, make_image_folder

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools' / 'benchmarks' / 'classification'
CONFIG_DIR = REPO / 'configs' / 'benchmarks' / 'classification'
TIMEOUT = 600  # seconds per subprocess on a loaded 2-core machine
MARKER = dict(type='Pretrained', checkpoint=None, prefix='backbone.')
IMAGENET_MEAN, IMAGENET_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]

LINEAR = 'imagenet/resnet50_linear-8xb32-steplr-100e_in1k.py'
FINETUNE = 'imagenet/resnet50_ft-8xb128-steplr-20e_in1k.py'
SEMI_1 = 'imagenet/resnet50_semi-1pct-8xb32-steplr-70e_in1k.py'
SEMI_10 = 'imagenet/resnet50_semi-10pct-8xb32-steplr-70e_in1k.py'
PLACES = 'places205/resnet50_ft-8xb128-steplr-20e_places205.py'
KNN = 'knn/knn_imagenet.py'
CLUSTERING = 'clustering/kmeans_imagenet.py'
# Training config -> (max epochs, milestones, gamma, backbone lr, head lr multiplier,
# images per GPU).
TRAINING = {
    LINEAR: (100, [60, 80], 0.1, 30.0, None, 32),
    FINETUNE: (20, [12, 16], 0.2, 0.1, 10.0, 128),
    SEMI_1: (70, [30, 60], 0.1, 0.02, 10.0, 32),
    SEMI_10: (70, [30, 60], 0.1, 0.005, 20.0, 32),
    PLACES: (20, [12, 16], 0.2, 0.05, 20.0, 128),
}

TINY_BACKBONE = dict(depth=18, base_channels=8, stem_channels=8)
EVAL_PREPROCESSOR = dict(type='ClsDataPreprocessor', mean=[60.0] * 3, std=[60.0] * 3,
                         to_rgb=True)  # the statistics of the tiny pre-training
EVAL_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
TRAIN_PER_CLASS, VAL_PER_CLASS = 10, 4
NUM_PROTOTYPES = [12, 6, 3]


@DATASETS.register_module(force=True)
class CoarseTinyFolder(CustomDataset):
    """The tiny folder with a two-level label hierarchy: classes {0, 1} and {2, 3}."""

    METAINFO = dict(coarse_classes=('top', 'bottom'))

    def get_coarse_labels(self) -> np.ndarray:
        return self.get_gt_labels() // 2


# ----------------------------------------------------------------------------- helpers
def _load_tool(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f'cls_tool_{path.stem}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _run(cmd: List[str], cwd: Path, env: Dict[str, str] = None) -> str:
    # One thread per process: with a thin model on a busy 2-core machine, torch's thread
    # pool spends far more time waiting than computing (20x slower here).
    full_env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1',
                    **(env or {}))
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f'{cmd} exited with {proc.returncode}:\n{log[-6000:]}'
    return log


def _write_ann(split_root: Path) -> None:
    lines = sorted(f'{p.parent.name}/{p.name} {p.parent.name.split("_")[1]}'
                   for p in split_root.glob('class_*/*.png'))
    meta = split_root.parent / 'meta'
    meta.mkdir(exist_ok=True)
    (meta / f'{split_root.name}.txt').write_text('\n'.join(lines) + '\n')


def _backbone_state(path) -> Dict[str, torch.Tensor]:
    state = torch.load(path, map_location='cpu', weights_only=True)['state_dict']
    return {k: v for k, v in state.items() if k.startswith('backbone.')}


def _scalars(work_dir: Path) -> List[dict]:
    files = list(work_dir.glob('*/vis_data/scalars.json'))
    assert len(files) == 1, files
    return [json.loads(line) for line in files[0].read_text().splitlines()]


def _tiny_override(base: str, data_root: Path, batch_size: int = 8) -> str:
    """A config inheriting one of ours, shrunk to the tiny data and model."""
    return f'''
_base_ = {str(CONFIG_DIR / base)!r}
model = dict(backbone=dict(depth=18, base_channels=8, stem_channels=8),
             head=dict(in_channels={EMBED_DIM}))
train_dataloader = dict(batch_size={batch_size}, num_workers=0,
                        dataset=dict(data_root={str(data_root)!r}))
val_dataloader = dict(batch_size=16, num_workers=0,
                      dataset=dict(data_root={str(data_root)!r}))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
randomness = dict(seed=0)
'''


# ----------------------------------------------------------------------------- fixtures
pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.fixture(autouse=True)
def _restore_local_rank(monkeypatch):
    """The tools export LOCAL_RANK like mmpretrain's; keep it out of later tests' env."""
    monkeypatch.setenv('LOCAL_RANK', os.environ.get('LOCAL_RANK', '0'))


@pytest.fixture(scope='module')
def tiny_imagenet(tmp_path_factory) -> Path:
    """``train/class_k/*.png`` (10 per class), ``val/`` (4 per class), ``meta/*.txt``."""
    root = tmp_path_factory.mktemp('tiny_imagenet')
    make_image_folder(root / 'train', per_class=TRAIN_PER_CLASS, seed=0)
    make_image_folder(root / 'val', per_class=VAL_PER_CLASS, seed=1)
    _write_ann(root / 'train')
    _write_ann(root / 'val')
    return root


@pytest.fixture(scope='module')
def hirl_checkpoint(tiny_imagenet, tmp_path_factory) -> Path:
    """A HIRL-SimCLR thin ResNet-18 after 2 epochs (prototypes 12 / 6 / 3 built once)."""
    work_dir = tmp_path_factory.mktemp('pretrain')
    cfg = hirl_config('SimCLR', tiny_imagenet / 'train', work_dir, max_epochs=2,
                      warmup_epochs=1, checkpoint_interval=2, embedding='neck')
    Runner.from_cfg(Config(cfg)).train()
    return work_dir / 'epoch_2.pth'


@pytest.fixture(scope='module')
def plain_checkpoint(hirl_checkpoint, tmp_path_factory) -> Path:
    """What plain mmpretrain pre-training writes: backbone and neck, no prototypes."""
    state = torch.load(hirl_checkpoint, map_location='cpu', weights_only=True)['state_dict']
    state = {k: v for k, v in state.items() if k.startswith(('backbone.', 'neck.'))}
    path = tmp_path_factory.mktemp('plain') / 'simclr_plain.pth'
    torch.save(dict(state_dict=state, meta=dict()), path)
    return path


@pytest.fixture(scope='module')
def eval_config(tiny_imagenet, tmp_path_factory) -> Path:
    """A KNN + clustering config for the tiny data (coarse labels for the clustering)."""
    def folder(split, dataset_type='CustomDataset'):
        return dict(type=dataset_type, data_root=str(tiny_imagenet / split),
                    pipeline=EVAL_PIPELINE)

    cfg = Config(dict(
        default_scope='mmpretrain',
        custom_imports=dict(imports=['hirl_mm'], allow_failed_imports=False),
        model=dict(backbone=dict(type='ResNet', **TINY_BACKBONE),
                   data_preprocessor=EVAL_PREPROCESSOR),
        knn_eval=dict(memory=folder('train'), query=folder('val'), ks=[1, 5, 10],
                      temperature=0.07, batch_size=8, num_workers=0),
        cluster_eval=dict(dataset=folder('val', 'CoarseTinyFolder'), batch_size=8,
                          num_workers=0,
                          clusterer=dict(type='HierarchicalKMeans', backend='torch',
                                         num_iters=20, num_redo=2, seed=0))))
    path = tmp_path_factory.mktemp('eval_cfg') / 'tiny_eval.py'
    cfg.dump(str(path))
    return path


# ------------------------------------------------------------------- configs (fast)
def _base_chain(path: Path) -> List[str]:
    """The ``_base_`` entries of a config and of its local bases (not executed)."""
    import ast
    found = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
            value = ast.literal_eval(node.value)
            for base in [value] if isinstance(value, str) else value:
                found.append(base)
                if '::' not in base:
                    found += _base_chain((path.parent / base).resolve())
    return found


@pytest.mark.parametrize('name', sorted(TRAINING))
def test_training_config_inherits_mmpretrain_and_marks_the_backbone(name):
    path = CONFIG_DIR / name
    assert any(base.startswith('mmpretrain::') for base in _base_chain(path))
    header = path.read_text().split('_base_')[0]
    assert 'HIRL' in header and 'tools/benchmarks/classification/' in header  # documented
    cfg = Config.fromfile(str(path))
    assert 'hirl_mm' in cfg.custom_imports['imports']
    assert cfg.model.type == 'ImageClassifier'
    assert cfg.model.backbone.type == 'ResNet' and cfg.model.backbone.depth == 50
    assert cfg.model.backbone.init_cfg == MARKER
    assert inject_pretrained(copy.deepcopy(cfg.model.to_dict()), 'x.pth') == ['backbone']
    assert cfg.data_preprocessor.mean == IMAGENET_MEAN
    assert cfg.data_preprocessor.std == IMAGENET_STD

    epochs, milestones, gamma, lr, head_mult, per_gpu = TRAINING[name]
    assert cfg.train_cfg.max_epochs == epochs
    steps = [s for s in cfg.param_scheduler if s.type == 'MultiStepLR']
    assert len(cfg.param_scheduler) == 1 and steps[0].milestones == milestones
    assert steps[0].gamma == gamma
    assert cfg.optim_wrapper.optimizer.type == 'SGD'
    assert cfg.optim_wrapper.optimizer.lr == lr
    assert cfg.optim_wrapper.optimizer.weight_decay == 0
    assert cfg.train_dataloader.batch_size == per_gpu
    if head_mult is None:  # linear probe: a frozen backbone
        assert cfg.model.backbone.frozen_stages == 4
    else:  # fine-tuning: everything trains, the new head faster, SyncBN as the reference
        assert cfg.model.backbone.get('frozen_stages', -1) == -1
        assert cfg.optim_wrapper.paramwise_cfg.custom_keys == {
            'head': dict(lr_mult=head_mult)}
        assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
    dataset = cfg.train_dataloader.dataset
    if name in (SEMI_1, SEMI_10):
        percent = 1 if name == SEMI_1 else 10
        assert dataset.ann_file == f'meta/{subset_file_name("train.txt", percent)}'
        assert dataset.data_root == 'data/imagenet' and dataset.data_prefix == 'train'
        assert cfg.val_dataloader.dataset.split == 'val'  # evaluated on the full val set
    if name == PLACES:
        assert dataset.type == cfg.val_dataloader.dataset.type == 'Places205'
        assert dataset.data_root == 'data/places205'
        assert (dataset.ann_file, dataset.data_prefix) == ('meta/train.txt', 'train')
        assert cfg.model.head.num_classes == cfg.data_preprocessor.num_classes == 205


def test_feature_protocol_configs():
    knn = Config.fromfile(str(CONFIG_DIR / KNN))
    assert knn.knn_eval.ks == [10, 20, 100, 200] and knn.knn_eval.temperature == 0.07
    assert (knn.knn_eval.memory.split, knn.knn_eval.query.split) == ('train', 'val')
    clustering = Config.fromfile(str(CONFIG_DIR / CLUSTERING))
    assert clustering.cluster_eval.dataset.split == 'val'
    assert clustering.cluster_eval.num_clusters is None  # K = number of classes
    for cfg in (knn, clustering):
        assert cfg.model.backbone.type == 'ResNet' and cfg.model.backbone.depth == 50
    for dataset in (knn.knn_eval.memory, knn.knn_eval.query, clustering.cluster_eval.dataset):
        # HIRL's eval transform: short side 256, center crop 224.
        assert [(t.type, t.get('scale', t.get('crop_size'))) for t in dataset.pipeline] == [
            ('LoadImageFromFile', None), ('ResizeEdge', 256), ('CenterCrop', 224),
            ('PackInputs', None)]


def test_a_classification_config_works_as_an_evaluation_config():
    """Without knn_eval / cluster_eval the dataloaders' data sets are used."""
    knn = _load_tool(TOOLS / 'knn.py')
    cluster_eval = _load_tool(TOOLS / 'cluster_eval.py')
    cfg = Config.fromfile(str(CONFIG_DIR / LINEAR))
    args = knn.parse_args(['cfg.py', 'ckpt.pth', '--ks', '20', '10', '--batch-size', '7'])
    settings = knn.knn_settings(cfg, args)
    assert settings['ks'] == [10, 20] and settings['batch_size'] == 7
    assert settings['temperature'] == 0.07
    assert settings['query'] == cfg.val_dataloader.dataset
    # The memory bank is the training split seen through the eval transform.
    assert settings['memory'].split == 'train'
    assert settings['memory'].pipeline == cfg.val_dataloader.dataset.pipeline
    args = cluster_eval.parse_args(['cfg.py', 'ckpt.pth', '--no-prototypes'])
    settings = cluster_eval.cluster_settings(cfg, args)
    assert settings['dataset'] == cfg.val_dataloader.dataset
    assert settings['prototypes'] is False and settings['num_clusters'] is None
    assert settings['clusterer']['type'] == 'HierarchicalKMeans'


@pytest.mark.parametrize('script,args', [
    ('dist_knn.sh', ['cfg.py', 'ckpt.pth']), ('dist_cluster_eval.sh', ['cfg.py']),
    ('dist_train_linear.sh', ['cfg.py', 'ckpt.pth']), ('dist_train.sh', ['cfg.py']),
    ('dist_train_semi.sh', ['cfg.py', 'x'])])
def test_scripts_print_usage_on_missing_args(script, args):
    proc = subprocess.run(['bash', str(TOOLS / script), *args], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and 'usage:' in proc.stderr


# ----------------------------------------------------------------- end to end (CPU)
@pytest.mark.slow
@pytest.mark.dist
def test_knn_in_process_cached_and_with_two_processes(eval_config, hirl_checkpoint,
                                                      tmp_path):
    knn = _load_tool(TOOLS / 'knn.py')
    cache = tmp_path / 'cache'
    first = knn.main([str(eval_config), str(hirl_checkpoint), '--cache-dir', str(cache),
                      '--work-dir', str(tmp_path)])
    written = json.loads((tmp_path / 'epoch_2_knn.json').read_text())
    assert written == first
    assert written['protocol'] == 'knn' and written['ks'] == [1, 5, 10]
    assert written['memory']['num_samples'] == 4 * TRAIN_PER_CLASS
    assert written['query']['num_samples'] == 4 * VAL_PER_CLASS
    assert written['num_classes'] == 4 and written['feature_dim'] == EMBED_DIM
    assert set(written['top1']) == {'1', '5', '10'}
    assert all(0 <= acc <= 100 for acc in written['top1'].values())
    assert not written['memory']['from_cache']
    cached = sorted(p.name for p in cache.iterdir())
    assert len(cached) == 2 and all(name.startswith('epoch_2_') for name in cached)

    again = knn.main([str(eval_config), str(hirl_checkpoint), '--cache-dir', str(cache),
                      '--out', str(tmp_path / 'again.json'), '--ks', '5'])
    assert again['memory']['from_cache'] and again['query']['from_cache']
    assert again['top1'] == {'5': first['top1']['5']}

    # Two gloo processes, each embedding half of every data set.
    log = _run(['bash', str(TOOLS / 'dist_knn.sh'), str(eval_config), str(hirl_checkpoint),
                '2', '--cache-dir', str(tmp_path / 'dist_cache'), '--out',
                str(tmp_path / 'dist.json')], cwd=tmp_path, env={'PORT': str(_free_port())})
    assert '2 process(es)' in log and 'top-1 (%)' in log
    dist_result = json.loads((tmp_path / 'dist.json').read_text())
    assert dist_result['world_size'] == 2
    assert dist_result['top1'] == first['top1']
    for role in ('memory', 'query'):
        single = torch.load(first[role]['cache_file'], weights_only=True)
        double = torch.load(dist_result[role]['cache_file'], weights_only=True)
        assert torch.equal(single['labels'], double['labels'])
        assert torch.allclose(single['features'], double['features'], atol=1e-5)


@pytest.mark.slow
def test_cluster_eval_scores_kmeans_and_hirl_levels_against_both_label_levels(
        eval_config, hirl_checkpoint, plain_checkpoint, tmp_path):
    tool = _load_tool(TOOLS / 'cluster_eval.py')
    cache = tmp_path / 'cache'
    results = tool.main([str(eval_config), str(hirl_checkpoint), '--cache-dir', str(cache),
                         '--out', str(tmp_path / 'clustering.json')])
    assert json.loads((tmp_path / 'clustering.json').read_text()) == results
    assert results['label_levels'] == {'fine': 4, 'coarse': 2}
    assert results['num_samples'] == 4 * VAL_PER_CLASS
    assert [row['num_clusters'] for row in results['kmeans']] == [4, 2]
    for row in results['kmeans'] + results['prototype_levels']:
        assert set(row['scores']) == {'fine', 'coarse'}
        for scores in row['scores'].values():
            assert set(scores) == {'nmi', 'ami', 'ari', 'acc'}
            assert 0 <= scores['nmi'] <= 1 and 0 <= scores['acc'] <= 1

    # HIRL's levels, recomputed here from the neck-space features: nearest level-0
    # prototype, lifted through parents.
    assert results['prototype_space'] == 'neck'
    assert results['prototype_feature_dim'] == NECK_DIM != results['feature_dim']
    levels = results['prototype_levels']
    assert [(row['level'], row['num_clusters']) for row in levels] == [(0, 12), (1, 6),
                                                                         (2, 3)]
    state = torch.load(hirl_checkpoint, map_location='cpu', weights_only=True)['state_dict']
    data = torch.load(results['prototype_cache_file'], weights_only=True)
    assign = (data['features'] @ state['prototypes.centroids_0'].T).argmax(dim=1)
    coarse = data['labels'] // 2
    assert torch.equal(data['coarse_labels'], coarse)
    for level, row in enumerate(levels):
        if level:
            assign = state[f'prototypes.parents_{level - 1}'][assign]
        assert row['num_nonempty'] == len(assign.unique())
        assert row['scores']['fine'] == clustering_scores(data['labels'], assign)
        assert row['scores']['coarse'] == clustering_scores(coarse, assign)

    # A checkpoint without prototypes (plain mmpretrain): k-means only.
    plain = tool.main([str(eval_config), str(plain_checkpoint), '--num-clusters', '3',
                       '--out', str(tmp_path / 'plain.json')])
    assert plain['prototype_levels'] is None and 'no HIRL prototypes' in \
        plain['prototypes_note']
    assert [row['num_clusters'] for row in plain['kmeans']] == [3]


@pytest.mark.slow
def test_linear_probe_keeps_the_pretrained_backbone(tiny_imagenet, hirl_checkpoint,
                                                    tmp_path):
    cfg = tmp_path / 'linear_tiny.py'
    cfg.write_text(_tiny_override(LINEAR, tiny_imagenet))
    work_dir = tmp_path / 'work'
    log = _run(['bash', str(TOOLS / 'dist_train_linear.sh'), str(cfg), str(hirl_checkpoint),
                '1', '--work-dir', str(work_dir)], cwd=tmp_path,
               env={'PORT': str(_free_port())})
    assert 'fit exactly: backbone' in log
    pretrained = _backbone_state(hirl_checkpoint)
    trained = torch.load(work_dir / 'epoch_1.pth', map_location='cpu',
                         weights_only=True)['state_dict']
    # Frozen: weights and BN statistics are still exactly the pre-trained ones.
    for key, value in pretrained.items():
        assert torch.equal(trained[key], value), key
    assert set(k for k in trained if not k.startswith('backbone.')) == {
        'head.fc.weight', 'head.fc.bias'}
    metrics = [s for s in _scalars(work_dir) if 'accuracy/top1' in s]
    assert len(metrics) == 1 and 0 <= metrics[0]['accuracy/top1'] <= 100


@pytest.mark.slow
def test_finetune_semi_supervised_and_places205_train(tiny_imagenet, hirl_checkpoint,
                                                      tmp_path):
    train = _load_tool(REPO / 'tools' / 'train.py')
    subsets = _load_tool(TOOLS / 'make_label_subsets.py')
    assert subsets.main([str(tiny_imagenet / 'meta' / 'train.txt')]) == 0
    # 1% and 10% of 40 images: one per class, the minimum.
    assert len((tiny_imagenet / 'meta' / 'train_1percent.txt').read_text().split('\n')) == 5
    pretrained = _backbone_state(hirl_checkpoint)
    for name, iters in ((FINETUNE, 5), (SEMI_1, 1), (SEMI_10, 1), (PLACES, 5)):
        cfg = tmp_path / f'{Path(name).stem}_tiny.py'
        cfg.write_text(_tiny_override(name, tiny_imagenet))
        work_dir = tmp_path / Path(name).stem
        train.main([str(cfg), '--pretrained', str(hirl_checkpoint), '--work-dir',
                    str(work_dir)])
        log = next(work_dir.glob('*/*.log')).read_text()
        assert f'Epoch(train) [1][{iters}/{iters}]' in log, name  # the (subset) size
        metrics = [s for s in _scalars(work_dir) if 'accuracy/top1' in s]
        assert len(metrics) == 1, name
        trained = torch.load(work_dir / 'epoch_1.pth', map_location='cpu',
                             weights_only=True)['state_dict']
        assert any(not torch.equal(trained[k], v) for k, v in pretrained.items()
                   if v.is_floating_point()), name  # fine-tuned, not frozen


# ------------------------------------- learned levels in their own space (fast, CPU)
def _build_hirl(cfg: Config):
    with DefaultScope.overwrite_default_scope(cfg.get('default_scope', 'hirl_mm')):
        return MODELS.build(cfg.model)


def _folder(root: Path) -> dict:
    return dict(type='CustomDataset', data_root=str(root), pipeline=EVAL_PIPELINE)


@torch.no_grad()
def _embed_directly(model, dataset_cfg: dict, embed) -> torch.Tensor:
    """``normalize(embed(preprocessed batch))`` over a data set, batches of 8 in order."""
    model.eval()
    with DefaultScope.overwrite_default_scope('hirl_mm'):
        loader = build_extraction_loader(dataset_cfg, batch_size=8)
    return torch.cat([F.normalize(embed(model.data_preprocessor(batch, False)['inputs']),
                                  dim=1) for batch in loader])


def _lifted(features: torch.Tensor, state: dict) -> List[torch.Tensor]:
    """Nearest level-0 prototype of each row, lifted through the stored parents."""
    assign = [(features @ state['prototypes.centroids_0'].T).argmax(dim=1)]
    for level in range(1, len(NUM_PROTOTYPES)):
        assign.append(state[f'prototypes.parents_{level - 1}'][assign[-1]])
    return assign


def _check_levels(levels: List[dict], assignments: List[torch.Tensor],
                  labels: torch.Tensor) -> None:
    assert [(row['level'], row['num_clusters']) for row in levels] == \
        list(enumerate(NUM_PROTOTYPES))
    for row, assign in zip(levels, assignments):
        assert row['num_nonempty'] == len(assign.unique())
        assert row['scores']['fine'] == clustering_scores(labels, assign)
        assert row['scores']['coarse'] == clustering_scores(labels // 2, assign)


@pytest.fixture(scope='module')
def neck_checkpoint(tiny_imagenet, tmp_path_factory) -> Path:
    """A HIRL-SimCLR checkpoint with ``embedding='neck'`` and one clustering round.

    No training: a freshly built thin model clusters the training images' clustering
    embeddings (the 16-d projector output; the backbone is 64-d) into 12 / 6 / 3
    prototypes; saved like mmengine's runner, with the config text in ``meta['cfg']``.
    """
    folder = tmp_path_factory.mktemp('neck_ckpt')
    cfg = Config(hirl_config('SimCLR', tiny_imagenet / 'train', folder,
                             num_clusters=NUM_PROTOTYPES, embedding='neck'))
    torch.manual_seed(0)
    model = _build_hirl(cfg)
    with DefaultScope.overwrite_default_scope('hirl_mm'):
        loader = build_extraction_loader(_folder(tiny_imagenet / 'train'), 8)
    features = extract_embeddings(model, loader, model.extract_clustering_embedding,
                                  show_progress=False)
    assert features.shape == (4 * TRAIN_PER_CLASS, NECK_DIM)
    clustering = HierarchicalKMeans(NUM_PROTOTYPES, backend='torch', num_iters=10,
                                    num_redo=1, seed=0)(features)
    model.prototypes.update(clustering.centroids, clustering.parents, clustering.im2cluster)
    path = folder / 'epoch_1.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict(cfg=cfg.pretty_text)), path)
    return path


@pytest.fixture(scope='module')
def legacy_checkpoint(neck_checkpoint, tmp_path_factory) -> Path:
    """What hirl_mm wrote before recording the space: no ``prototypes.embedding_space``,
    prototypes as wide as the backbone (64-d) and a config without ``embedding``."""
    loaded = torch.load(neck_checkpoint, map_location='cpu', weights_only=True)
    state = dict(loaded['state_dict'])
    del state['prototypes.embedding_space']
    generator = torch.Generator().manual_seed(1)
    for level, k in enumerate(NUM_PROTOTYPES):
        state[f'prototypes.centroids_{level}'] = F.normalize(
            torch.randn(k, EMBED_DIM, generator=generator), dim=1)
    cfg = Config.fromstring(loaded['meta']['cfg'], '.py')
    cfg.model.pop('embedding', None)
    path = tmp_path_factory.mktemp('legacy_ckpt') / 'legacy.pth'
    torch.save(dict(state_dict=state, meta=dict(cfg=cfg.pretty_text)), path)
    return path


def test_cluster_eval_scores_neck_prototypes_with_neck_embeddings(
        eval_config, neck_checkpoint, tmp_path):
    tool = _load_tool(TOOLS / 'cluster_eval.py')
    cache = tmp_path / 'cache'
    args = [str(eval_config), str(neck_checkpoint), '--cache-dir', str(cache)]
    results = tool.main(args + ['--out', str(tmp_path / 'neck.json')])
    assert json.loads((tmp_path / 'neck.json').read_text()) == results
    assert results['prototype_space'] == 'neck'
    assert results['feature_dim'] == EMBED_DIM  # k-means: the backbone features
    assert results['prototype_feature_dim'] == NECK_DIM  # learned levels: the neck's
    assert 'neck space (16-d)' in results['prototypes_note']
    assert 'recorded config' in results['prototypes_note']
    # Two cache entries: the backbone features and the prototype-space features.
    assert results['prototype_cache_file'] != results['cache_file']
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        os.path.basename(f) for f in (results['cache_file'], results['prototype_cache_file']))
    assert 'neck-prototype-space' in os.path.basename(results['prototype_cache_file'])

    # The same images embedded here by the pre-training model rebuilt from the checkpoint.
    loaded = torch.load(neck_checkpoint, map_location='cpu', weights_only=True)
    state = loaded['state_dict']
    model = _build_hirl(Config.fromstring(loaded['meta']['cfg'], '.py'))
    model.load_state_dict(state, strict=True)
    dataset_cfg = Config.fromfile(str(eval_config)).cluster_eval.dataset
    direct = _embed_directly(model, dataset_cfg, model.extract_clustering_embedding)
    assert direct.shape == (4 * VAL_PER_CLASS, NECK_DIM)
    cached = torch.load(results['prototype_cache_file'], weights_only=True)
    assert torch.allclose(cached['features'], direct, atol=1e-5)
    _check_levels(results['prototype_levels'], _lifted(direct, state), cached['labels'])

    # Read back from the cache: the same scores.
    again = tool.main(args + ['--out', str(tmp_path / 'again.json')])
    assert again['from_cache'] and again['prototype_from_cache']
    assert again['prototype_levels'] == results['prototype_levels']


def test_cluster_eval_needs_the_pretrain_config_when_the_checkpoint_has_none(
        eval_config, neck_checkpoint, tmp_path):
    loaded = torch.load(neck_checkpoint, map_location='cpu', weights_only=True)
    bare = tmp_path / 'bare.pth'  # e.g. a converted checkpoint: no meta['cfg']
    torch.save(dict(state_dict=loaded['state_dict'], meta=dict()), bare)
    tool = _load_tool(TOOLS / 'cluster_eval.py')
    skipped = tool.main([str(eval_config), str(bare), '--out', str(tmp_path / 'a.json')])
    assert skipped['prototype_levels'] is None and skipped['prototype_space'] == 'neck'
    assert '--pretrain-config' in skipped['prototypes_note']
    assert skipped['kmeans']  # k-means on the backbone features still runs

    pretrain_cfg = tmp_path / 'pretrain.py'
    Config.fromstring(loaded['meta']['cfg'], '.py').dump(str(pretrain_cfg))
    scored = tool.main([str(eval_config), str(bare), '--pretrain-config', str(pretrain_cfg),
                        '--out', str(tmp_path / 'b.json')])
    assert scored['prototype_space'] == 'neck'
    assert scored['prototype_feature_dim'] == NECK_DIM
    assert '--pretrain-config' in scored['prototypes_note']
    reference = tool.main([str(eval_config), str(neck_checkpoint),
                           '--out', str(tmp_path / 'c.json')])
    assert scored['prototype_levels'] == reference['prototype_levels']

    # A pre-training config that does not fit the checkpoint stops the evaluation.
    wrong = Config.fromstring(loaded['meta']['cfg'], '.py')
    wrong.model.embedding = 'backbone'
    wrong.dump(str(tmp_path / 'wrong.py'))
    with pytest.raises(tool.PretrainedLoadingError, match='does not fit'):
        tool.main([str(eval_config), str(bare), '--pretrain-config',
                   str(tmp_path / 'wrong.py'), '--out', str(tmp_path / 'd.json')])


def test_cluster_eval_scores_legacy_prototypes_with_backbone_features(
        eval_config, legacy_checkpoint, tmp_path):
    tool = _load_tool(TOOLS / 'cluster_eval.py')
    results = tool.main([str(eval_config), str(legacy_checkpoint), '--cache-dir',
                         str(tmp_path / 'cache'), '--out', str(tmp_path / 'legacy.json')])
    assert results['prototype_space'] == 'backbone'
    assert results['prototypes_note'] == \
        'legacy checkpoint: prototypes built on the pooled backbone'
    assert results['prototype_feature_dim'] == results['feature_dim'] == EMBED_DIM
    assert results['prototype_cache_file'] == results['cache_file']  # the same features
    state = torch.load(legacy_checkpoint, map_location='cpu', weights_only=True)['state_dict']
    data = torch.load(results['cache_file'], weights_only=True)
    _check_levels(results['prototype_levels'], _lifted(data['features'], state),
                  data['labels'])


@pytest.mark.parametrize('which', ['neck', 'legacy'])
def test_hirl_report_reads_new_and_legacy_checkpoints(which, neck_checkpoint,
                                                      legacy_checkpoint, tiny_imagenet,
                                                      tmp_path, capsys):
    checkpoint = neck_checkpoint if which == 'neck' else legacy_checkpoint
    loaded = torch.load(checkpoint, map_location='cpu', weights_only=True)
    state = loaded['state_dict']
    cfg = Config.fromstring(loaded['meta']['cfg'], '.py')
    # The report's memory bank is the (labelled) training set the prototypes clustered.
    cfg.train_dataloader.dataset = _folder(tiny_imagenet / 'train')
    cfg.report = dict(query_dataset=_folder(tiny_imagenet / 'val'),
                      eval_pipeline=EVAL_PIPELINE, knn_ks=[1, 5], batch_size=8)
    cfg.dump(str(tmp_path / 'report_cfg.py'))
    tool = _load_tool(REPO / 'tools' / 'analysis_tools' / 'hirl_report.py')
    out = tmp_path / 'report.json'
    assert tool.main([str(tmp_path / 'report_cfg.py'), str(checkpoint), '--out',
                      str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())

    expected = 'neck (16-d)' if which == 'neck' else 'backbone (64-d; legacy checkpoint)'
    assert f'embedding space: {expected}' in printed
    assert '== Hierarchical prototypes (1 clustering rounds, 40 samples) ==' in printed
    assert '== KNN top-1 of the backbone (40 train images as memory, 16 test images' in \
        printed
    assert report['prototype_space'] == ('neck' if which == 'neck' else 'backbone')
    assert report['prototype_dim'] == (NECK_DIM if which == 'neck' else EMBED_DIM)
    assert [s['num_clusters'] for s in report['cluster_stats']] == NUM_PROTOTYPES
    assert set(report['knn_top1']) == {'1', '5'}
    # The learned levels are the stored assignments of the training images.
    labels = torch.tensor([c for c in range(4) for _ in range(TRAIN_PER_CLASS)])
    assert len(report['level_scores']) == len(NUM_PROTOTYPES)
    for level, row in enumerate(report['level_scores']):
        assert row['fine'] == clustering_scores(labels, state[f'prototypes.im2cluster_{level}'])
    # KNN reads the backbone only: the same for both checkpoints (same backbone weights).
    other = tmp_path / 'backbone_knn.json'
    assert tool.main([str(tmp_path / 'report_cfg.py'), str(neck_checkpoint), '--out',
                      str(other)]) == 0
    assert json.loads(other.read_text())['knn_top1'] == report['knn_top1']
