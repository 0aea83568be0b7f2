from types import SimpleNamespace

import pytest
import torch

from hirl_mm.engine.hooks import HierarchicalClusteringHook
from hirl_mm.engine.hooks.clustering_inputs import with_pipeline as _with_pipeline
from hirl_mm.registry import HOOKS


def test_schedule_warmup_and_interval():
    hook = HierarchicalClusteringHook(warmup_epochs=2, interval=3)
    assert [e for e in range(12) if hook.is_due(e)] == [2, 5, 8, 11]
    every_epoch = HierarchicalClusteringHook(warmup_epochs=0)
    assert all(every_epoch.is_due(e) for e in range(5))


@pytest.mark.parametrize('kwargs', [dict(warmup_epochs=-1), dict(interval=0)])
def test_bad_schedule(kwargs):
    with pytest.raises(ValueError, match='warmup_epochs'):
        HierarchicalClusteringHook(**kwargs)


def test_registered_and_default_clusterer():
    hook = HOOKS.build(dict(type='HierarchicalClusteringHook'))
    assert hook.clusterer_cfg == dict(type='HierarchicalKMeans')
    assert hook.extract_pipeline[-1]['type'] == 'PackInputs'


def test_needs_a_hirl_model():
    runner = SimpleNamespace(model=torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match='needs a HIRL model'):
        HierarchicalClusteringHook().before_run(runner)


def test_needs_an_epoch_based_loop():
    runner = SimpleNamespace(train_loop=SimpleNamespace(max_iters=10))
    with pytest.raises(TypeError, match='epoch-based train loop'):
        HierarchicalClusteringHook().before_train(runner)
    # IterBasedTrainLoop has a max_epochs (1) but never advances runner.epoch: refused too.
    from mmengine.runner import IterBasedTrainLoop
    loop = IterBasedTrainLoop.__new__(IterBasedTrainLoop)
    with pytest.raises(TypeError, match='epoch-based train loop'):
        HierarchicalClusteringHook().before_train(SimpleNamespace(train_loop=loop))


def test_extract_pipeline_replaces_the_innermost_pipeline():
    pipeline = [dict(type='PackInputs')]
    plain = _with_pipeline(dict(type='ImageNet', pipeline=['train']), pipeline)
    assert plain['pipeline'] == pipeline
    wrapped = _with_pipeline(
        dict(type='RepeatDataset', times=2, dataset=dict(type='ImageNet', pipeline=['x'])),
        pipeline)
    assert wrapped['dataset']['pipeline'] == pipeline and 'pipeline' not in wrapped
    with pytest.raises(TypeError, match='config dict'):
        _with_pipeline(object(), pipeline)
