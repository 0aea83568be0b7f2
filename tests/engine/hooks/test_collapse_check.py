"""Representation collapse is caught (issue 21, case 4): a collapsed clustering round warns,
repeated ones stop the run with the cause and the fix. A real run forced to collapse, and
the judgement of cluster sizes."""
import pytest
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.utils import get_ori_model
from torch import nn

from hirl_mm.engine.hooks.collapse_check import (CollapseSettings, RepresentationCollapseError,
                                                 check_collapse, collapse_reason)
from hirl_mm.registry import HOOKS
from tiny_setup import hirl_config, make_image_folder
from toy_training import read_log, stub_runner

pytestmark = pytest.mark.usefixtures('single_thread')


def _stats(sizes) -> list:
    return [dict(level=0, num_clusters=len(sizes), num_points=sum(sizes), min_size=min(sizes),
                 median_size=sorted(sizes)[len(sizes) // 2], max_size=max(sizes),
                 num_empty=sum(s == 0 for s in sizes))]


def test_collapse_reason():
    settings = CollapseSettings()
    assert collapse_reason(_stats([5, 4, 3, 4]), settings) is None
    assert collapse_reason(_stats([0, 0, 300]), settings) == \
        'one level-0 cluster holds 300 of 300 samples (100%) and 2 of the 3 level-0 ' \
        'clusters are empty'
    assert collapse_reason(_stats([1, 1, 0, 0, 0, 0, 30, 30]), settings) == \
        '4 of the 8 level-0 clusters are empty'
    assert collapse_reason(_stats([30]), settings) is None  # one cluster asked for


def test_patience_zero_only_warns():
    runner = stub_runner('collapse', cfg=Config(dict(collapse_check=dict(patience=0))),
                         epoch=3, work_dir='w')
    for _ in range(3):
        check_collapse(runner, _stats([0, 0, 16]))
    assert runner.message_hub.get_info('hirl/collapsed_rounds')['rounds'] == 3
    check_collapse(runner, _stats([8, 8, 0]))  # a healthy round resets the count
    assert runner.message_hub.get_info('hirl/collapsed_rounds')['rounds'] == 0


@HOOKS.register_module(force=True)
class CollapseBackboneHook(Hook):
    """Forces collapse: from epoch 1 on, zeroes the backbone's convolutions before each
    epoch (so before each clustering round), so every image gets the same embedding, as a
    learning rate far too high does to larger runs."""

    priority = 'ABOVE_NORMAL'  # before HierarchicalClusteringHook

    def before_train_epoch(self, runner) -> None:
        if runner.epoch >= 1:
            for module in get_ori_model(runner.model).backbone.modules():
                if isinstance(module, nn.Conv2d):
                    module.weight.data.zero_()


def test_a_run_forced_to_collapse_warns_then_stops(tmp_path):
    cfg = hirl_config('SimCLR', make_image_folder(tmp_path / 'data', per_class=4),
                      tmp_path / 'work', max_epochs=5, warmup_epochs=1, num_clusters=(4, 2))
    cfg['custom_hooks'].append(dict(type='CollapseBackboneHook'))
    runner = Runner.from_cfg(Config(cfg))
    with pytest.raises(RepresentationCollapseError) as error:
        runner.train()
    message = str(error.value)
    assert ('representation collapse at the clustering round before epoch 3: one level-0 '
            'cluster holds 16 of 16 samples (100%) and 3 of the 4 level-0 clusters are '
            'empty') in message
    assert 'Likely cause: a learning rate far too high: lower optim_wrapper.optimizer.lr' \
        in message
    assert 'Training stopped after 2 collapsed rounds in a row (collapse_check patience=2);' \
           ' epoch_1.pth and later checkpoints hold the collapsed network' in message
    log = read_log(runner)
    # The first collapsed round only warned.
    assert 'representation collapse at the clustering round before epoch 2' in log
    assert 'The run stops after 2 collapsed rounds in a row' in log
    assert runner.epoch == 2  # stopped before training epoch 3 on collapsed prototypes
    assert sorted(p.name for p in (tmp_path / 'work').glob('*.pth')) == \
        ['epoch_1.pth', 'epoch_2.pth']
