"""Runs that cannot do HIRL stop before their first iteration, naming the cause and the fix
(issue 21, cases 1, 2 and 7): a warm-up as long as the training, a data set smaller than one
batch with drop_last=True (with and without an LR scheduler), an empty num_clusters. Real
short runs on a 16-image folder, through mmengine's Runner and tools/train.py."""
import glob
import os

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

from hirl_mm.engine.hooks.schedule_checks import ScheduleCheckError, clustering_epochs
from tiny_setup import hirl_config, make_image_folder
from tool_loading import load_tool

pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    """16 images (4 per class) and 4 images (1 per class)."""
    root = tmp_path_factory.mktemp('schedule_checks')
    return make_image_folder(root / 'sixteen', per_class=4), \
        make_image_folder(root / 'four', per_class=1)


def _cfg(data_root, work_dir, **kwargs) -> dict:
    kwargs.setdefault('num_clusters', (4, 2))
    return hirl_config('SimCLR', data_root, work_dir, batch_size=8, **kwargs)


def _stops_before_training(cfg: dict, match: str) -> None:
    runner = Runner.from_cfg(Config(cfg))
    with pytest.raises(ScheduleCheckError, match=match):
        runner.train()
    assert runner.iter == 0
    assert glob.glob(os.path.join(cfg['work_dir'], '*.pth')) == []


def test_clustering_epochs():
    assert list(clustering_epochs(2, 1, 0, 5)) == [2, 3, 4]
    assert list(clustering_epochs(2, 3, 0, 9)) == [2, 5, 8]
    assert list(clustering_epochs(2, 3, 4, 9)) == [5, 8]  # resumed at epoch 4
    assert list(clustering_epochs(10, 1, 0, 3)) == []


def test_warmup_as_long_as_the_training_is_refused(folders, tmp_path):
    """``custom_hooks.0.warmup_epochs=10`` with 3 epochs: would never cluster."""
    _stops_before_training(
        _cfg(folders[0], tmp_path, max_epochs=3, warmup_epochs=10),
        r'warmup_epochs=10 \(interval=1\) but train_cfg.max_epochs=3: this run would never '
        r'cluster.*loss_semantic would stay 0.*custom_hooks.0.warmup_epochs=0')


def test_data_set_smaller_than_a_batch_is_refused(folders, tmp_path):
    """4 images, batch 8, drop_last=True, no LR scheduler: 0 iterations an epoch."""
    _stops_before_training(
        _cfg(folders[1], tmp_path, max_epochs=3, warmup_epochs=1, num_clusters=(2, 1)),
        r'0 iterations per epoch \(4 samples, train_dataloader.batch_size=8, '
        r'drop_last=True\).*batch_size to at most 4, or train_dataloader.drop_last=False')


def test_train_py_refuses_it_with_an_lr_scheduler_too(folders, tmp_path):
    """With a scheduler mmengine would fail first ("epoch_length must be a positive
    integer"); tools/train.py checks before the scheduler is built."""
    train = load_tool('tools/train.py')
    cfg = Config(_cfg(folders[1], tmp_path / 'work', max_epochs=3, warmup_epochs=1,
                      num_clusters=(2, 1)))
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0,
                                end=1, convert_to_iter_based=True)]
    cfg.dump(str(tmp_path / 'cfg.py'))
    with pytest.raises(ScheduleCheckError, match='0 iterations per epoch'):
        train.main([str(tmp_path / 'cfg.py')])
    assert glob.glob(str(tmp_path / 'work' / '*.pth')) == []


def test_empty_num_clusters_names_num_clusters(folders, tmp_path):
    with pytest.raises(ValueError, match=r'len\(model.num_clusters\), so model.num_clusters '
                                         r'is empty.*num_clusters=\[30000, 10000, 1000\]'):
        Runner.from_cfg(Config(_cfg(folders[0], tmp_path, num_clusters=())))
