"""tools/train.py refuses, before the first iteration and with the cause and the fix, what
would otherwise train nonsense or fail late (issue 21, cases 6, 8 and 12): ``--resume`` on a
mistyped or empty work dir, ``--cfg-options`` with a ``dict(...)`` value, and
``--check-images`` on a folder holding unreadable images; and it bounds the wait for a hung
process of a distributed run (case 11)."""
import os
from pathlib import Path
from types import ModuleType

import pytest
from mmengine.config import Config

from hirl_mm.datasets.image_check import UnreadableImageError
from hirl_mm.utils.dist_timeout import (DEFAULT_DIST_TIMEOUT_S, collective_timeout_hint,
                                        set_default_dist_timeout)
from hirl_mm.utils.launch import MissingInputError
from tiny_setup import hirl_config, make_image_folder
from tool_loading import load_tool

pytestmark = pytest.mark.usefixtures('single_thread')


@pytest.fixture(scope='module')
def train() -> ModuleType:
    return load_tool('tools/train.py')


def _config_file(tmp_path: Path, data_root: Path) -> str:
    cfg = Config(hirl_config('SimCLR', data_root, tmp_path / 'work', num_clusters=(4, 2)))
    cfg.dump(str(tmp_path / 'cfg.py'))
    return str(tmp_path / 'cfg.py')


def test_resume_on_a_mistyped_work_dir_is_refused(train, image_folder, tmp_path):
    config = _config_file(tmp_path, image_folder)
    typo = tmp_path / 'wrok'
    with pytest.raises(MissingInputError,
                       match=f'--resume: the work directory {typo} does not exist, so there '
                             f'is nothing to resume.*--allow-fresh-start'):
        train.main([config, '--work-dir', str(typo), '--resume'])
    assert not typo.exists()
    # A job script that always passes --resume may start afresh, but only when asked.
    args = train.parse_args([config, '--work-dir', str(typo), '--resume',
                             '--allow-fresh-start'])
    assert train.merge_args(Config.fromfile(config), args).resume is False


def test_resume_on_an_empty_work_dir_names_what_it_holds(train, image_folder, tmp_path):
    config = _config_file(tmp_path, image_folder)
    work = tmp_path / 'work'
    work.mkdir()
    with pytest.raises(MissingInputError, match='holds no last_checkpoint, so there is '
                                                'nothing to resume'):
        train.main([config, '--work-dir', str(work), '--resume'])
    (work / 'epoch_4.pth').write_bytes(b'x')
    with pytest.raises(MissingInputError, match=r'holds 1 checkpoint\(s\) \(epoch_4.pth\)'
                                                r'.*--resume .*epoch_4.pth'):
        train.main([config, '--work-dir', str(work), '--resume'])


def test_resume_after_the_work_dir_was_moved(train, image_folder, tmp_path):
    """last_checkpoint holds an absolute path; the same file name in the moved dir is used."""
    config = _config_file(tmp_path, image_folder)
    work = tmp_path / 'moved'
    work.mkdir()
    (work / 'epoch_2.pth').write_bytes(b'x')
    (work / 'last_checkpoint').write_text('/old/place/epoch_2.pth')
    cfg = train.merge_args(Config.fromfile(config), train.parse_args(
        [config, '--work-dir', str(work), '--resume']))
    assert cfg.resume is True and cfg.load_from == str(work / 'epoch_2.pth')


def test_cfg_options_with_a_dict_value_is_explained(train, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(['cfg.py', '--cfg-options',
                          'param_scheduler=[dict(type=LinearLR,start_factor=0.1)]'])
    err = capsys.readouterr().err
    assert 'param_scheduler=...: a dict(...) value cannot be given on the command line' in err
    assert 'param_scheduler.0.begin=10' in err and 'RecursionError' not in err


def test_check_images_lists_every_unreadable_image_before_training(train, tmp_path):
    data = make_image_folder(tmp_path / 'data', per_class=3)
    truncated, empty = data / 'class_1' / '001.png', data / 'class_3' / '002.png'
    truncated.write_bytes(truncated.read_bytes()[:60])
    empty.write_bytes(b'')
    config = _config_file(tmp_path, data)
    with pytest.raises(UnreadableImageError) as error:
        train.main([config, '--check-images'])
    message = str(error.value)
    assert '2 of the 12 image files of the training set cannot be read' in message
    assert f'sample_idx 4: {truncated}: truncated or not an image' in message
    assert f'sample_idx 11: {empty}: empty (0 bytes)' in message
    listed = (tmp_path / 'work' / 'unreadable_images.txt').read_text().splitlines()
    assert [line.split('\t')[0] for line in listed] == [str(truncated), str(empty)]
    assert not list((tmp_path / 'work').glob('*.pth'))
    assert not any(name.endswith('.log') and 'Epoch(train)' in
                   Path(root, name).read_text()
                   for root, _, names in os.walk(tmp_path / 'work') for name in names)


def test_distributed_runs_get_a_bounded_timeout():
    """Case 11 (the frozen rank itself: tests/integration/test_frozen_rank.py)."""
    cfg = Config(dict(env_cfg=dict(dist_cfg=dict(backend='nccl'))))
    assert set_default_dist_timeout(cfg, 'none') is None and 'timeout' not in \
        cfg.env_cfg.dist_cfg
    assert set_default_dist_timeout(cfg, 'pytorch') == DEFAULT_DIST_TIMEOUT_S == 1800
    cfg.env_cfg.dist_cfg.timeout = 300  # a config's own value wins
    assert set_default_dist_timeout(Config(cfg.to_dict()), 'slurm') == 300
    gloo = RuntimeError('[gloo/transport/tcp/unbound_buffer.cc:81] Timed out waiting 300000ms '
                        'for recv operation to complete')
    assert 'env_cfg.dist_cfg.timeout=300 s' in collective_timeout_hint(gloo, cfg)
    assert collective_timeout_hint(RuntimeError('DataLoader timed out after 5 seconds'),
                                   cfg) is None
