"""Unreadable checkpoint files are reported by name, as corrupt or not a checkpoint (or
refused as unsafe), through every mmengine load path, never with torch's advice to load
with weights_only=False."""
import os

import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint

from hirl_mm.evaluation.checkpoint_reading import load_checkpoint_file
from hirl_mm.utils.checkpoint_loading import UnreadableCheckpointError
from hirl_mm.utils.launch import MissingInputError
from toy_training import runner_config


class Payload:
    """Pickles as a call of os.system: what a crafted checkpoint does."""

    def __reduce__(self):
        return (os.system, ('echo should-never-run',))


def _bad_files(folder) -> dict:
    good = folder / 'good.pth'
    torch.save({'state_dict': {'w': torch.ones(3)}}, good)
    data = good.read_bytes()
    files = {'empty': b'', 'truncated': data[:len(data) // 2], 'random': os.urandom(512),
             'text': b'this is not a checkpoint\n'}
    for name, content in files.items():
        (folder / f'{name}.pth').write_bytes(content)
    torch.save({'state_dict': {'x': Payload()}}, folder / 'crafted.pth')
    return {name: str(folder / f'{name}.pth') for name in [*files, 'crafted']}


@pytest.fixture(scope='module')
def bad_files(tmp_path_factory):
    return _bad_files(tmp_path_factory.mktemp('checkpoints'))


@pytest.mark.parametrize('name,expected', [
    ('empty', r'is empty \(0 bytes\)'),
    ('truncated', 'is corrupt .* or not a checkpoint .*zip archive'),
    ('random', 'is corrupt .* or not a checkpoint'),
    ('text', 'is corrupt .* or not a checkpoint'),
    ('crafted', 'Refused to load .*calls posix.system'),
])
@pytest.mark.parametrize('load', [_load_checkpoint, load_checkpoint_file])
def test_unreadable_files_are_named(bad_files, capfd, name, expected, load):
    path = bad_files[name]
    with pytest.raises(UnreadableCheckpointError, match=expected) as error:
        load(path)
    message = str(error.value)
    assert path in message and 'weights_only' not in message
    assert error.value.__cause__ is None  # torch's advice is not chained either
    assert 'should-never-run' not in capfd.readouterr().out


def test_the_tools_print_it_without_a_traceback():
    assert issubclass(UnreadableCheckpointError, MissingInputError)


def test_good_checkpoints_and_missing_files_as_before(tmp_path):
    torch.save({'state_dict': {'w': torch.ones(3)}}, tmp_path / 'good.pth')
    assert torch.equal(_load_checkpoint(str(tmp_path / 'good.pth'))['state_dict']['w'],
                       torch.ones(3))
    with pytest.raises(FileNotFoundError, match='can not be found'):
        _load_checkpoint(str(tmp_path / 'missing.pth'))


class Tiny(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return dict(loss=self.linear(inputs).mean()) if mode == 'loss' else inputs


def test_resume_from_a_corrupt_checkpoint_names_it(bad_files, tmp_path):
    runner = Runner(**runner_config(tmp_path, Tiny(), [], name='corrupt_resume',
                                    optimizer=dict(type='SGD', lr=0.1), resume=True,
                                    load_from=bad_files['truncated']))
    with pytest.raises(UnreadableCheckpointError, match=bad_files['truncated']):
        runner.train()
    assert runner.iter == 0
