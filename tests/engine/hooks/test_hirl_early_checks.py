"""HierarchicalClusteringHook stops a HIRL run before its first iteration on settings the
first clustering would trip on, and never trains on prototypes of another data set
(real short Runner runs on a 16-image folder)."""
import glob
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from hirl_mm.datasets.fingerprint import dataset_fingerprint
from hirl_mm.engine.hooks.pipeline_checks import PipelineCheckError
from tiny_setup import hirl_config, make_image_folder, needs_fashion_mnist, shrunk_config
from toy_training import read_log

pytestmark = pytest.mark.usefixtures('single_thread')

NO_SAMPLE_IDX = dict(type='PackInputs', meta_keys=('img_path', ))


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    """Two 4-class folders: 4 images per class, and 3 (the first 3 of the same ones)."""
    root = tmp_path_factory.mktemp('early_checks')
    return (make_image_folder(root / 'four', per_class=4),
            make_image_folder(root / 'three', per_class=3))


def _cfg(data_root, work_dir, **kwargs) -> dict:
    kwargs.setdefault('num_clusters', (6, 3, 2))
    return hirl_config('SimCLR', data_root, work_dir, batch_size=8, **kwargs)


def _stops_before_training(cfg, match: str) -> Runner:
    runner = Runner.from_cfg(cfg if isinstance(cfg, Config) else Config(cfg))
    with pytest.raises(PipelineCheckError, match=match):
        runner.train()
    assert runner.iter == 0 and glob.glob(os.path.join(cfg['work_dir'], '*.pth')) == []
    return runner


def test_more_clusters_than_samples(folders, tmp_path):
    _stops_before_training(_cfg(folders[0], tmp_path, num_clusters=(40, 6, 3)),
                           r'model.num_clusters=\[40, 6, 3\] asks for 40 clusters at level 0,'
                           r' but the training set has only 16 samples')


def test_training_pipeline_without_sample_idx(folders, tmp_path):
    cfg = _cfg(folders[0], tmp_path)
    cfg['train_dataloader']['dataset']['pipeline'][-1] = NO_SAMPLE_IDX
    _stops_before_training(cfg, 'training pipeline packs no sample_idx.*meta_keys of the '
                                'PackInputs of train_dataloader.dataset.pipeline')


def test_extraction_pipeline_without_sample_idx(folders, tmp_path):
    cfg = _cfg(folders[0], tmp_path)
    cfg['custom_hooks'][0]['extract_pipeline'] = [dict(type='LoadImageFromFile'),
                                                  NO_SAMPLE_IDX]
    _stops_before_training(cfg, r'extraction pipeline of HierarchicalClusteringHook packs no '
                                r'sample_idx.*HierarchicalClusteringHook\(extract_pipeline')


def test_extraction_pipeline_that_does_not_end_in_pack_inputs(folders, tmp_path):
    cfg = _cfg(folders[0], tmp_path)
    cfg['custom_hooks'][0]['extract_pipeline'] = [dict(type='LoadImageFromFile')]
    _stops_before_training(cfg, 'does not end with PackInputs')


def test_default_extraction_pipeline_is_the_configs_test_pipeline(folders, tmp_path):
    cfg = _cfg(folders[0], tmp_path, max_epochs=1, warmup_epochs=1)
    del cfg['custom_hooks'][0]['extract_pipeline']
    # A test pipeline that packs no sample_idx: the hook took it, so it stops on it.
    cfg['test_pipeline'] = [dict(type='LoadImageFromFile'), NO_SAMPLE_IDX]
    _stops_before_training(cfg, r'\(now taken from test_pipeline\)')


@needs_fashion_mnist()
def test_file_loading_extraction_on_an_in_memory_data_set(tmp_path):
    cfg = shrunk_config('configs/study/hirl-simclr_tiny-resnet18_fashion-mnist.py', tmp_path,
                        num_per_class=2, batch_size=8)
    (hook, ) = [h for h in cfg.custom_hooks if h.type == 'HierarchicalClusteringHook']
    del hook['extract_pipeline']  # nor does the config name an eval pipeline:
    cfg.eval_pipeline = None      # the ImageNet default (LoadImageFromFile) is used
    cfg.model.num_clusters = [6, 3, 2]
    cfg.log_level = 'INFO'
    runner = _stops_before_training(
        cfg, r"KeyError: 'img_path'.*keeps its images in memory.*drop it from the pipeline.*"
             r'HierarchicalClusteringHook\(extract_pipeline=...\) \(now taken from the '
             r'default ImageNet eval pipeline\)')
    assert 'ImageNet eval pipeline' in read_log(runner)


@needs_fashion_mnist()
def test_the_configs_eval_pipeline_is_used_by_default(tmp_path):
    cfg = shrunk_config('configs/study/hirl-simclr_tiny-resnet18_fashion-mnist.py', tmp_path,
                        num_per_class=2, batch_size=8, max_epochs=1, warmup_epochs=0)
    (hook, ) = [h for h in cfg.custom_hooks if h.type == 'HierarchicalClusteringHook']
    del hook['extract_pipeline']
    cfg.model.num_clusters = [6, 3, 2]
    cfg.log_level = 'INFO'
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert int(runner.model.prototypes.num_updates) == 1
    assert "from eval_pipeline: [{'type': 'PackInputs'}]" in read_log(runner)


def _trained_checkpoint(folder, work_dir) -> str:
    """One epoch, clustered before it; returns its checkpoint."""
    runner = Runner.from_cfg(Config(_cfg(folder, work_dir, max_epochs=1, warmup_epochs=0)))
    runner.train()
    prototypes = runner.model.prototypes
    assert prototypes.num_samples == 16
    assert prototypes.recorded_fingerprint == dataset_fingerprint(
        runner.train_dataloader.dataset)
    return os.path.join(work_dir, 'epoch_1.pth')


def _resume_cfg(folder, work_dir, checkpoint, **hook_args) -> dict:
    # Epoch 1 (0-based) is not a clustering epoch: warm-up 0, every 2 epochs.
    cfg = _cfg(folder, work_dir, max_epochs=2, warmup_epochs=0)
    cfg['custom_hooks'][0].update(interval=2, **hook_args)
    cfg.update(resume=True, load_from=checkpoint, log_level='INFO')
    return cfg


def test_resume_onto_a_smaller_data_set_reclusters_before_training(folders, tmp_path):
    checkpoint = _trained_checkpoint(folders[0], tmp_path / 'first')
    runner = Runner.from_cfg(Config(_resume_cfg(folders[1], tmp_path / 'second', checkpoint)))
    runner.train()
    prototypes = runner.model.prototypes
    assert int(prototypes.num_updates) == 2 and prototypes.num_samples == 12
    assert prototypes.recorded_fingerprint == dataset_fingerprint(
        runner.train_dataloader.dataset)
    log = read_log(runner)
    change = log.index('the training set has 12 samples, the prototypes were built on 16')
    assert 'Re-clustering now, before epoch 1' in log[change:]
    # Nothing trained on the stored assignments: the only epoch trained came after.
    assert change < log.index('Epoch(train) [2]')


def test_resume_onto_another_list_of_the_same_size_can_stop(folders, tmp_path):
    checkpoint = _trained_checkpoint(folders[0], tmp_path / 'first')
    other = make_image_folder(tmp_path / 'other', per_class=4, seed=1)  # other images
    os.rename(other / 'class_0' / '000.png', other / 'class_0' / 'renamed.png')
    runner = Runner.from_cfg(Config(_resume_cfg(other, tmp_path / 'second', checkpoint,
                                                on_data_change='error')))
    with pytest.raises(RuntimeError, match=r'same size \(16\) but another sample list.*'
                                           r"on_data_change='recluster'"):
        runner.train()
    assert runner.iter == 2  # the resumed position: no iteration ran


def test_resume_onto_the_same_data_set_keeps_the_prototypes(folders, tmp_path):
    checkpoint = _trained_checkpoint(folders[0], tmp_path / 'first')
    saved = torch.load(checkpoint, map_location='cpu')['state_dict']
    runner = Runner.from_cfg(Config(_resume_cfg(folders[0], tmp_path / 'second', checkpoint,
                                                on_data_change='error')))
    runner.train()
    assert runner.iter == 4 and int(runner.model.prototypes.num_updates) == 1
    assert torch.equal(runner.model.prototypes.im2cluster_0, saved['prototypes.im2cluster_0'])


def test_config_eval_pipeline_order():
    from hirl_mm.engine.hooks.pipeline_checks import config_eval_pipeline
    test = [dict(type='PackInputs')]
    wrapped = dict(dataset=dict(type='RepeatDataset', dataset=dict(pipeline=test)))
    assert config_eval_pipeline(Config(dict(test_dataloader=wrapped, val_pipeline=[1]))) == \
        (test, 'test_dataloader.dataset.pipeline')
    assert config_eval_pipeline(Config(dict(val_dataloader=None, val_pipeline=test))) == \
        (test, 'val_pipeline')
    assert config_eval_pipeline(Config(dict(train_pipeline=test))) is None


def test_bad_on_data_change():
    from hirl_mm.engine.hooks import HierarchicalClusteringHook
    with pytest.raises(ValueError, match='on_data_change'):
        HierarchicalClusteringHook(on_data_change='ignore')


def test_clusterer_builds_without_a_scope_warning_under_mmpretrains_scope(capsys):
    from mmengine.registry import DefaultScope

    from hirl_mm.registry import CLUSTERERS
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        clusterer = CLUSTERERS.build(dict(type='HierarchicalKMeans', num_clusters=[4, 2]))
    assert type(clusterer).__name__ == 'HierarchicalKMeans'
    assert 'Failed to search registry' not in capsys.readouterr().out


def test_unknown_algorithm_message_prints_as_written():
    from mmengine.registry import DefaultScope

    from hirl_mm.registry import MODELS
    with DefaultScope.overwrite_default_scope('hirl_mm'), pytest.raises(KeyError) as error:
        MODELS.build(dict(type='HIRL', algorithm='SimCRL', num_clusters=[4, 2],
                          backbone=dict(type='ResNet', depth=18)))
    message = str(error.value)
    assert "algorithm='SimCRL' is not a registered model" in message
    assert '\\' not in message and not message.startswith(("'", '"'))
