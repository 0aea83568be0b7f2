"""A kill at any moment of a checkpoint save leaves a resumable run (issue 21, case 5).

The real kill: a child process running tools/train.py (a tiny HIRL run,
``max_keep_ckpts=1``) is SIGKILLed halfway through writing epoch 2's checkpoint;
``tools/train.py --resume`` then finishes the run. The other moments of a save (after the
rename, after ``last_checkpoint``) are interrupted in process, each leaving a complete
checkpoint that ``last_checkpoint`` names.
"""
import os
import signal
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.fileio.backends import LocalBackend
from mmengine.runner import Runner

import forked
import hirl_mm.engine.hooks.atomic_checkpoint_hook as atomic
from tiny_setup import hirl_config, make_image_folder
from tool_loading import load_tool

pytestmark = pytest.mark.usefixtures('single_thread')


class Interrupted(Exception):
    """Stands in for a kill at one moment of the save."""


def _cfg(data_root, work_dir, max_epochs: int = 3) -> dict:
    cfg = hirl_config('SimCLR', data_root, work_dir, max_epochs=max_epochs, warmup_epochs=1,
                      num_clusters=(4, 2))
    cfg['default_hooks']['checkpoint'].update(type='AtomicCheckpointHook', max_keep_ckpts=1)
    return cfg


def test_kill_while_writing_a_checkpoint_then_resume(tmp_path):
    data = make_image_folder(tmp_path / 'data', per_class=2)
    work = tmp_path / 'work'
    cfg = Config(hirl_config('SimCLR', data, work, max_epochs=3, warmup_epochs=1,
                             num_clusters=(4, 2)))
    cfg.default_hooks.checkpoint.max_keep_ckpts = 1  # tools/train.py makes it atomic
    cfg.log_level = 'INFO'
    cfg.dump(str(tmp_path / 'cfg.py'))
    put = LocalBackend.put

    def put_then_die(self, obj, filepath):  # in the child only
        if str(filepath).endswith('epoch_2.pth.partial'):
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
            os.kill(os.getpid(), signal.SIGKILL)
        return put(self, obj, filepath)

    def killed_train():
        LocalBackend.put = put_then_die
        load_tool('tools/train.py').main([str(tmp_path / 'cfg.py')])

    child = forked.fork(killed_train, tmp_path / 'killed.log')
    status = forked.wait(child, timeout=300)
    assert status == -signal.SIGKILL, (tmp_path / 'killed.log').read_text()[-3000:]
    # The previous checkpoint is intact and named; the new one never got its name.
    assert (work / 'last_checkpoint').read_text() == str(work / 'epoch_1.pth')
    assert torch.load(work / 'epoch_1.pth', map_location='cpu')['meta']['epoch'] == 1
    assert not (work / 'epoch_2.pth').exists()
    assert (work / 'epoch_2.pth.partial').stat().st_size > 0

    load_tool('tools/train.py').main([str(tmp_path / 'cfg.py'), '--resume'])  # no error
    (log, ) = [p for p in work.glob('*/*.log') if 'resumed epoch' in p.read_text()]
    assert 'resumed epoch: 1' in log.read_text()
    assert 'Removed epoch_2.pth.partial' in log.read_text()
    assert sorted(p.name for p in work.glob('epoch_*')) == ['epoch_3.pth']  # keeps 1
    assert (work / 'last_checkpoint').read_text() == str(work / 'epoch_3.pth')


@pytest.mark.parametrize('moment', ['rename', 'last_checkpoint', 'removal'])
def test_interrupted_at_every_later_moment(moment, tmp_path, monkeypatch):
    """Epoch 2's save interrupted after its data are written: before the rename, before
    ``last_checkpoint``, before the outdated epoch 1 is removed. Each leaves a complete
    checkpoint named by ``last_checkpoint``, and a resume finishes the run."""
    commit, write, remove = atomic._commit, atomic.write_file_atomically, \
        atomic.AtomicCheckpointHook._remove_steps

    def stop_at(step_name, original):
        def wrapped(*args):
            if 'epoch_2' in str(args) or (step_name == 'removal' and args[-1] == [1]):
                raise Interrupted(step_name)
            return original(*args)
        return wrapped

    if moment == 'rename':
        monkeypatch.setattr(atomic, '_commit', stop_at('rename', commit))
    elif moment == 'last_checkpoint':
        monkeypatch.setattr(atomic, 'write_file_atomically', stop_at(moment, write))
    else:
        monkeypatch.setattr(atomic.AtomicCheckpointHook, '_remove_steps',
                            stop_at(moment, remove))
    work, data = tmp_path / 'work', make_image_folder(tmp_path / 'data', per_class=2)
    with pytest.raises(Interrupted):
        Runner.from_cfg(Config(_cfg(data, work))).train()
    named = Path((work / 'last_checkpoint').read_text())
    expected = 'epoch_1.pth' if moment in ('rename', 'last_checkpoint') else 'epoch_2.pth'
    assert named.name == expected
    assert torch.load(named, map_location='cpu')['meta']['epoch'] == int(expected[6])

    monkeypatch.undo()
    cfg = _cfg(data, work)
    cfg.update(resume=True)
    Runner.from_cfg(Config(cfg)).train()
    assert sorted(p.name for p in work.iterdir() if p.name.startswith('epoch_')) == \
        ['epoch_3.pth']
