"""hirl_mm.utils.checkpoint_safety: mmengine checkpoints load under torch's weights-only mode,
and arbitrary pickled callables are still refused."""
import io
import os
import pickle
import subprocess
import sys
import uuid

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, METRICS, MODELS
from mmengine.runner import Runner, load_checkpoint
from mmengine.utils import digit_version
from torch.utils.data import Dataset

from hirl_mm.utils.checkpoint_safety import allow_mmengine_checkpoint_types

pytestmark = pytest.mark.skipif(
    digit_version(torch.__version__) < digit_version('2.6.0'),
    reason='torch < 2.6 does not load weights-only by default')


@MODELS.register_module(force=True)
class CkptSafetyToyModel(BaseModel):
    """Linear + BatchNorm (buffers too) classifier on 4-d inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.bn = nn.BatchNorm1d(2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        logits = self.bn(self.fc(inputs))
        if mode == 'loss':
            return dict(loss=F.cross_entropy(logits, data_samples))
        if mode == 'predict':
            return [dict(pred=int(p), gt=int(g)) for p, g in zip(logits.argmax(1), data_samples)]
        return logits


@DATASETS.register_module(force=True)
class CkptSafetyToyDataset(Dataset):
    """16 fixed samples; its metainfo (saved in checkpoints) holds a numpy int array."""

    def __init__(self) -> None:
        rng = np.random.RandomState(0)
        self.x = rng.randn(16, 4).astype(np.float32)
        self.y = (self.x[:, 0] > 0).astype(np.int64)
        self.metainfo = dict(classes=('neg', 'pos'), class_ids=np.arange(2))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return dict(inputs=torch.from_numpy(self.x[i]), data_samples=int(self.y[i]))


@METRICS.register_module(force=True)
class CkptSafetyToyMetric(BaseMetric):
    """Returns numpy values: a float64 scalar (-> ``best_score``) and a per-class array
    (-> a non-scalar entry of the message hub's runtime info)."""
    default_prefix = 'toy'

    def process(self, data_batch, data_samples) -> None:
        self.results.extend((d['pred'], d['gt']) for d in data_samples)

    def compute_metrics(self, results) -> dict:
        preds, gts = np.array(results).T
        per_class = np.array([np.mean(preds[gts == c] == c) if np.any(gts == c) else 0.0
                              for c in range(2)])
        return dict(accuracy=np.float64(np.mean(preds == gts)), per_class=per_class)


def _runner(work_dir: str, max_epochs: int, **kwargs) -> Runner:
    loader = dict(
        dataset=dict(type='CkptSafetyToyDataset'),
        sampler=dict(type='DefaultSampler', shuffle=True),
        batch_size=4,
        num_workers=0,
        collate_fn=dict(type='default_collate'))
    return Runner(
        model=dict(type='CkptSafetyToyModel'),
        work_dir=work_dir,
        experiment_name=f'ckpt_safety_{uuid.uuid4().hex}',  # fresh logger/message hub
        train_dataloader=loader,
        val_dataloader=loader,
        val_evaluator=dict(type='CkptSafetyToyMetric'),
        val_cfg=dict(),
        test_dataloader=loader,
        test_evaluator=dict(type='CkptSafetyToyMetric'),
        test_cfg=dict(),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=dict(type='MultiStepLR', by_epoch=True, milestones=[1]),
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook', interval=1, save_best='toy/accuracy',
                rule='greater'),
            logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=[dict(type='EMAHook')],
        randomness=dict(seed=0),
        default_scope='mmengine',
        **kwargs)


@pytest.fixture(scope='module')
def trained_work_dir(tmp_path_factory) -> str:
    """A work dir with the checkpoints of a real 2-epoch mmengine run."""
    work_dir = str(tmp_path_factory.mktemp('ckpt_safety'))
    _runner(work_dir, max_epochs=2).train()
    return work_dir


@pytest.mark.slow
def test_mmengine_checkpoint_needs_and_gets_the_allow_list(trained_work_dir):
    path = os.path.join(trained_work_dir, 'epoch_1.pth')
    # Without hirl_mm's allow-list (a fresh interpreter that does not import it), torch's
    # default weights-only load refuses mmengine's own checkpoint.
    plain = subprocess.run([sys.executable, '-c', f'import torch; torch.load({path!r})'],
                           capture_output=True, text=True, timeout=300)
    assert plain.returncode != 0
    assert 'HistoryBuffer' in plain.stderr or 'numpy' in plain.stderr, plain.stderr[-2000:]

    ckpt = torch.load(path)  # default settings: weights_only=True
    assert isinstance(ckpt['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    assert ckpt['message_hub']['log_scalars']['train/loss'].mean() > 0
    assert isinstance(ckpt['message_hub']['runtime_info']['best_score'], np.floating)
    assert ckpt['meta']['epoch'] == 1


@pytest.mark.slow
def test_load_checkpoint_restores_weights(trained_work_dir):
    path = os.path.join(trained_work_dir, 'epoch_2.pth')
    model = CkptSafetyToyModel()
    load_checkpoint(model, path, map_location='cpu')
    saved = torch.load(path)['state_dict']
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, saved[name])


@pytest.mark.slow
def test_runner_resumes_and_loads(trained_work_dir, tmp_path):
    runner = _runner(
        str(tmp_path / 'resume'),
        max_epochs=3,
        resume=True,
        load_from=os.path.join(trained_work_dir, 'epoch_2.pth'))
    runner.train()
    assert runner.epoch == 3
    assert (tmp_path / 'resume' / 'epoch_3.pth').is_file()
    assert not (tmp_path / 'resume' / 'epoch_1.pth').exists()  # epochs 1-2 were not re-run
    # The message hub's history came back with the checkpoint.
    assert runner.message_hub.get_info('best_score') is not None

    tester = _runner(
        str(tmp_path / 'test'),
        max_epochs=1,
        load_from=os.path.join(trained_work_dir, 'epoch_2.pth'))
    metrics = tester.test()
    assert 0.0 <= metrics['toy/accuracy'] <= 1.0


class _RunsCommand:
    """Pickles as a call of ``func(*args)``: what a malicious checkpoint would hold."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class _CustomClass:
    """An arbitrary class, not allow-listed."""

    def __init__(self) -> None:
        self.value = 1


@pytest.mark.parametrize('make_payload', [
    lambda marker: _RunsCommand(os.system, f'touch {marker}'),
    lambda marker: _RunsCommand(subprocess.call, ['touch', str(marker)]),
    lambda marker: _RunsCommand(eval, f'open({str(marker)!r}, "w").close()'),
    lambda marker: _CustomClass(),
    # The restricted getattr stand-in must not hand out anything but HistoryBuffer's
    # statistics methods.
    lambda marker: _RunsCommand(getattr, HistoryBuffer, '__init__'),
    lambda marker: _RunsCommand(getattr, np.ndarray, 'tofile'),
], ids=['os.system', 'subprocess.call', 'eval', 'custom_class', 'getattr_init',
        'getattr_tofile'])
def test_arbitrary_callables_are_still_refused(tmp_path, make_payload):
    allow_mmengine_checkpoint_types()
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'meta': make_payload(marker)}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    assert not marker.exists()


def test_real_getattr_is_not_allow_listed():
    allow_mmengine_checkpoint_types()
    assert getattr not in torch.serialization.get_safe_globals()


def test_idempotent():
    allow_mmengine_checkpoint_types()
    before = torch.serialization.get_safe_globals()
    allow_mmengine_checkpoint_types()
    allow_mmengine_checkpoint_types()
    after = torch.serialization.get_safe_globals()
    assert len(after) == len(before)
    assert set(map(repr, after)) == set(map(repr, before))


def test_numpy_arrays_and_scalars_under_numpy1_and_numpy2_names():
    """numpy 2 pickles name ``numpy._core.multiarray``, numpy 1 ``numpy.core.multiarray``:
    both load whichever numpy is installed."""
    allow_mmengine_checkpoint_types()
    buf = io.BytesIO()
    # The legacy format is one plain pickle stream, so its module names can be rewritten.
    torch.save({'arr': np.arange(3), 'f32': np.float32(0.5), 'flag': np.bool_(True)}, buf,
               _use_new_zipfile_serialization=False)
    raw = buf.getvalue()
    for old, new in [(b'numpy._core.multiarray', b'numpy.core.multiarray'),
                     (b'numpy.core.multiarray', b'numpy._core.multiarray')]:
        if old in raw:
            loaded = torch.load(io.BytesIO(raw.replace(old, new)))
            np.testing.assert_array_equal(loaded['arr'], np.arange(3))
            assert loaded['f32'] == np.float32(0.5) and loaded['flag']
    loaded = torch.load(io.BytesIO(raw))
    np.testing.assert_array_equal(loaded['arr'], np.arange(3))
