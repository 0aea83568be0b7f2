"""tools/train.py, tools/test.py, the dist/slurm scripts and hirl_mm.utils.launch, on CPU.

The end-to-end tests run the tools as subprocesses on a toy model and data set written into
a temporary folder (``hirl_tools_toy.py``, imported by the config through
``custom_imports``); they are marked ``slow``, and the two-process gloo one also ``dist``
(all run by default).
"""
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Optional

import pytest
from mmengine.config import Config

from hirl_mm.utils import launch

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / 'tools'
TIMEOUT = 600  # seconds per tool run; a loaded 2-core machine is slow to import torch

TOY_MODULE = '''
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.registry import DATASETS, METRICS, MODELS
from torch.utils.data import Dataset


@MODELS.register_module(force=True)
class ToolsToyModel(BaseModel):
    def __init__(self, data_preprocessor=None):
        super().__init__(data_preprocessor)
        self.fc = nn.Linear(8, 2)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        logits = self.fc(inputs)
        if mode == 'loss':
            return dict(loss=F.cross_entropy(logits, data_samples))
        if mode == 'predict':
            return [dict(pred=int(p), gt=int(g))
                    for p, g in zip(logits.argmax(1), data_samples)]
        return logits


@DATASETS.register_module(force=True)
class ToolsToyDataset(Dataset):
    def __init__(self, size=32):
        rng = np.random.RandomState(0)
        self.x = rng.randn(size, 8).astype(np.float32)
        self.y = (self.x[:, 0] > 0).astype(np.int64)
        self.metainfo = dict(classes=('neg', 'pos'))

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=torch.from_numpy(self.x[i]), data_samples=int(self.y[i]))


@METRICS.register_module(force=True)
class ToolsToyAccuracy(BaseMetric):
    default_prefix = 'toy'

    def process(self, data_batch, data_samples):
        self.results.extend(int(d['pred'] == d['gt']) for d in data_samples)

    def compute_metrics(self, results):
        return dict(accuracy=np.float64(np.mean(results)))
'''

# 32 samples, batch 4: 8 iterations an epoch. 'nccl' as in mmpretrain's default_runtime, so
# the distributed runs exercise the CPU fallback to gloo.
TOY_CONFIG = '''
custom_imports = dict(imports=['hirl_tools_toy'], allow_failed_imports=False)
default_scope = 'hirl_mm'
model = dict(type='ToolsToyModel')
train_dataloader = dict(
    batch_size=4, num_workers=0, dataset=dict(type='ToolsToyDataset'),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=8, num_workers=0, dataset=dict(type='ToolsToyDataset', size=16),
    sampler=dict(type='DefaultSampler', shuffle=False))
test_dataloader = val_dataloader
val_evaluator = dict(type='ToolsToyAccuracy')
test_evaluator = val_evaluator
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
val_cfg = dict()
test_cfg = dict()
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9))
param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[1], gamma=0.1)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=1, save_best='auto'),
    logger=dict(type='LoggerHook', interval=1))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
randomness = dict(seed=0)
auto_scale_lr = dict(base_batch_size=4, enable=False)
'''


# ----------------------------------------------------------------------------- helpers
def _load_tool(name: str) -> ModuleType:
    """Import ``tools/<name>.py`` as a module (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f'hirl_tools_{name}', TOOLS / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_cfg(path) -> Config:
    """Load a config without importing its ``custom_imports`` (the toy module is only on
    the tools' PYTHONPATH)."""
    return Config.fromfile(str(path), import_custom_modules=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _run(cmd: List[str], toy_dir: Path, cwd: Path,
         env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run a tool with this interpreter (``PYTHON`` for the sh scripts) and the toy module
    importable; fail with the tail of its output if it fails."""
    full_env = dict(os.environ)
    full_env['PYTHONPATH'] = os.pathsep.join(
        p for p in (str(toy_dir), full_env.get('PYTHONPATH')) if p)
    full_env['PYTHON'] = sys.executable
    full_env.update(env or {})
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, (
        f'{cmd} exited with {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc


@pytest.fixture(scope='module')
def toy(tmp_path_factory) -> Path:
    """A folder holding the toy module and ``toy_cfg.py``."""
    folder = tmp_path_factory.mktemp('toy')
    (folder / 'hirl_tools_toy.py').write_text(TOY_MODULE)
    (folder / 'toy_cfg.py').write_text(TOY_CONFIG)
    return folder


@pytest.fixture(scope='module')
def trained(toy, tmp_path_factory) -> Path:
    """The work dir of ``tools/train.py`` run for 1 epoch through ``--cfg-options``."""
    work_dir = tmp_path_factory.mktemp('train') / 'work'
    proc = _run([
        sys.executable, str(TOOLS / 'train.py'), str(toy / 'toy_cfg.py'), '--work-dir',
        str(work_dir), '--cfg-options', 'train_cfg.max_epochs=1',
        'train_dataloader.batch_size=8'
    ], toy, cwd=work_dir.parent)
    (work_dir / 'train.log').write_text(proc.stdout + proc.stderr)
    return work_dir


# ------------------------------------------------------------------ end to end (CPU)
@pytest.mark.slow
def test_train_writes_checkpoint_and_applies_cfg_options(trained):
    assert (trained / 'epoch_1.pth').is_file()
    # max_epochs=1 from --cfg-options beat the config's 2.
    assert not (trained / 'epoch_2.pth').exists()
    dumped = _load_cfg(trained / 'toy_cfg.py')
    assert dumped.train_cfg.max_epochs == 1
    assert dumped.train_dataloader.batch_size == 8
    assert dumped.launcher == 'none'
    # batch 8 over 32 samples: 4 iterations, not the config's 8.
    assert 'Epoch(train) [1][4/4]' in (trained / 'train.log').read_text()


@pytest.mark.slow
def test_resume_continues_from_latest_checkpoint(trained, toy, tmp_path):
    work_dir = tmp_path / 'work'
    shutil.copytree(trained, work_dir)
    # last_checkpoint holds an absolute path: point it at the copy.
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_1.pth'))
    proc = _run([
        sys.executable, str(TOOLS / 'train.py'), str(toy / 'toy_cfg.py'), '--work-dir',
        str(work_dir), '--resume', '--cfg-options', 'train_dataloader.batch_size=8'
    ], toy, cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 1, iter: 4' in log
    assert 'Epoch(train) [1]' not in log  # epoch 1 was not trained again
    assert 'Epoch(train) [2][4/4]' in log
    assert (work_dir / 'epoch_2.pth').is_file()


@pytest.mark.slow
def test_test_py_evaluates_checkpoint(trained, toy, tmp_path):
    out = tmp_path / 'metrics.json'
    _run([
        sys.executable, str(TOOLS / 'test.py'), str(toy / 'toy_cfg.py'),
        str(trained / 'epoch_1.pth'), '--work-dir', str(tmp_path / 'test'), '--out',
        str(out), '--out-item', 'metrics'
    ], toy, cwd=tmp_path)
    metrics = json.loads(out.read_text())
    assert 0.0 <= metrics['toy/accuracy'] <= 1.0


@pytest.mark.dist
@pytest.mark.slow
def test_dist_train_two_gloo_processes_on_cpu(toy, tmp_path):
    work_dir = tmp_path / 'work'
    proc = _run([
        'bash', str(TOOLS / 'dist_train.sh'), str(toy / 'toy_cfg.py'), '2', '--work-dir',
        str(work_dir), '--cfg-options', 'train_cfg.max_epochs=1'
    ], toy, cwd=tmp_path, env={'PORT': str(_free_port())})
    log = proc.stdout + proc.stderr
    assert "using the 'gloo' distributed backend" in log
    assert 'world size 2' in log
    # 32 samples, batch 4, split over 2 processes: 4 iterations each.
    assert 'Epoch(train) [1][4/4]' in log
    assert (work_dir / 'epoch_1.pth').is_file()


# ------------------------------------------------------------------ shell scripts
@pytest.fixture
def fake_srun(tmp_path) -> Path:
    """A ``srun`` on PATH that records its arguments instead of launching anything."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    srun = bin_dir / 'srun'
    srun.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$SRUN_RECORD"\n')
    srun.chmod(0o755)
    return bin_dir


def _run_slurm_script(script: str, args: List[str], fake_srun: Path,
                      tmp_path: Path) -> List[str]:
    record = tmp_path / 'srun_args.txt'
    env = dict(os.environ, PATH=f'{fake_srun}{os.pathsep}{os.environ["PATH"]}',
               SRUN_RECORD=str(record), GPUS='4', GPUS_PER_NODE='2', CPUS_PER_TASK='3',
               SRUN_ARGS='--quotatype=auto --mem=1G', PYTHON='mypython')
    subprocess.run(['bash', str(TOOLS / script), *args], env=env, check=True,
                   capture_output=True, timeout=60)
    return record.read_text().splitlines()


def test_slurm_train_sh_composes_srun(fake_srun, tmp_path):
    argv = _run_slurm_script('slurm_train.sh', ['part', 'job', 'cfg.py', 'wd', '--amp'],
                             fake_srun, tmp_path)
    assert argv[:2] == ['-p', 'part']
    for expected in ('--job-name=job', '--gres=gpu:2', '--ntasks=4', '--ntasks-per-node=2',
                     '--cpus-per-task=3', '--kill-on-bad-exit=1', '--quotatype=auto',
                     '--mem=1G'):
        assert expected in argv
    cmd = argv[argv.index('mypython'):]
    assert cmd == ['mypython', '-u', str(TOOLS / 'train.py'), 'cfg.py', '--work-dir=wd',
                   '--launcher=slurm', '--amp']

    # WORK_DIR is optional: an option in its place goes to train.py.
    argv = _run_slurm_script('slurm_train.sh', ['part', 'job', 'cfg.py', '--no-validate'],
                             fake_srun, tmp_path)
    assert argv[argv.index('mypython'):] == [
        'mypython', '-u', str(TOOLS / 'train.py'), 'cfg.py', '--launcher=slurm',
        '--no-validate'
    ]


def test_slurm_test_sh_composes_srun(fake_srun, tmp_path):
    argv = _run_slurm_script('slurm_test.sh',
                             ['part', 'job', 'cfg.py', 'ckpt.pth', '--out', 'r.pkl'],
                             fake_srun, tmp_path)
    assert argv[argv.index('mypython'):] == [
        'mypython', '-u', str(TOOLS / 'test.py'), 'cfg.py', 'ckpt.pth', '--launcher=slurm',
        '--out', 'r.pkl'
    ]


@pytest.mark.parametrize('script,args', [
    ('dist_train.sh', ['cfg.py']),
    ('dist_test.sh', ['cfg.py', 'ckpt.pth']),
    ('slurm_train.sh', ['part', 'job']),
    ('slurm_test.sh', ['part', 'job', 'cfg.py']),
])
def test_scripts_print_usage_on_missing_args(script, args):
    proc = subprocess.run(['bash', str(TOOLS / script), *args], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert 'usage:' in proc.stderr


# ------------------------------------------------------------------ in-process units
@pytest.fixture(autouse=True)
def _restore_local_rank(monkeypatch):
    """parse_args exports LOCAL_RANK like mmpretrain; keep it out of later tests' env."""
    monkeypatch.setenv('LOCAL_RANK', os.environ.get('LOCAL_RANK', '0'))


@pytest.fixture(scope='module')
def train_tool() -> ModuleType:
    return _load_tool('train')


@pytest.fixture(scope='module')
def test_tool() -> ModuleType:
    return _load_tool('test')


def _train_cfg(train_tool, toy, argv):
    args = train_tool.parse_args([str(toy / 'toy_cfg.py'), *argv])
    return train_tool.merge_args(_load_cfg(toy / 'toy_cfg.py'), args)


def test_train_merge_args_defaults(train_tool, toy):
    cfg = _train_cfg(train_tool, toy, [])
    assert cfg.work_dir == os.path.join('./work_dirs', 'toy_cfg')
    assert not cfg.get('resume', False)
    for field in launch.DATALOADER_FIELDS:
        # num_workers=0: persistent workers would make torch's DataLoader raise.
        assert cfg[field].persistent_workers is False
        assert cfg[field].collate_fn.type == 'default_collate'


def test_train_merge_args_options(train_tool, toy, tmp_path):
    ckpt = tmp_path / 'epoch_3.pth'
    ckpt.write_bytes(b'')
    cfg = _train_cfg(train_tool, toy, [
        '--work-dir', 'wd', '--resume', str(ckpt), '--no-validate', '--auto-scale-lr',
        '--no-pin-memory', '--cfg-options', 'train_dataloader.num_workers=2',
        'optim_wrapper.optimizer.lr=0.5'
    ])
    assert cfg.work_dir == 'wd'
    assert cfg.resume is True and cfg.load_from == str(ckpt)
    assert cfg.val_dataloader is None and cfg.val_evaluator is None and cfg.val_cfg is None
    assert cfg.auto_scale_lr.enable is True
    assert cfg.train_dataloader.pin_memory is False
    assert cfg.train_dataloader.num_workers == 2
    assert cfg.train_dataloader.persistent_workers is True
    assert cfg.optim_wrapper.optimizer.lr == 0.5

    # --resume alone: the checkpoint the work dir's last_checkpoint names (none: refused,
    # see test_train_refusals.py).
    work_dir = tmp_path / 'wd'
    work_dir.mkdir()
    (work_dir / 'last_checkpoint').write_text(str(ckpt))
    cfg = _train_cfg(train_tool, toy, ['--work-dir', str(work_dir), '--resume'])
    assert cfg.resume is True and cfg.load_from == str(ckpt)


def test_train_reports_missing_inputs(train_tool, toy, tmp_path):
    with pytest.raises(launch.MissingInputError, match='Config file not found'):
        train_tool.main([str(tmp_path / 'nope.py')])
    with pytest.raises(launch.MissingInputError, match='Checkpoint to resume from'):
        _train_cfg(train_tool, toy, ['--resume', str(tmp_path / 'missing.pth')])
    cfg = _load_cfg(toy / 'toy_cfg.py')
    cfg.auto_scale_lr = None
    args = train_tool.parse_args([str(toy / 'toy_cfg.py'), '--auto-scale-lr'])
    with pytest.raises(ValueError, match='auto_scale_lr'):
        train_tool.merge_args(cfg, args)


def test_test_merge_args(test_tool, toy, tmp_path):
    config = str(toy / 'toy_cfg.py')
    args = test_tool.parse_args([config, 'ckpt.pth', '--out', 'preds.pkl'])
    cfg = test_tool.merge_args(_load_cfg(config), args)
    assert cfg.load_from == 'ckpt.pth'
    assert cfg.work_dir == os.path.join('./work_dirs', 'toy_cfg')
    assert cfg.test_evaluator[-1] == dict(type='DumpResults', out_file_path='preds.pkl')

    args = test_tool.parse_args([config, 'ckpt.pth', '--out', 'm.json', '--out-item',
                                 'metrics'])
    cfg = test_tool.merge_args(_load_cfg(config), args)
    assert cfg.test_evaluator == dict(type='ToolsToyAccuracy')

    with pytest.raises(SystemExit):  # --out-item without --out
        test_tool.parse_args([config, 'ckpt.pth', '--out-item', 'metrics'])
    with pytest.raises(SystemExit):  # predictions are pickled
        test_tool.parse_args([config, 'ckpt.pth', '--out', 'preds.json'])
    with pytest.raises(launch.MissingInputError, match='Checkpoint not found'):
        test_tool.main([config, str(tmp_path / 'missing.pth')])


def test_setup_launcher_none_only_records_launcher(toy):
    cfg = _load_cfg(toy / 'toy_cfg.py')
    launch.setup_launcher(cfg, 'none')
    assert cfg.launcher == 'none'
    assert cfg.env_cfg.dist_cfg.backend == 'nccl'
    assert cfg.get('model_wrapper_cfg') is None


@pytest.mark.parametrize('backend,warned', [('gloo', True), ('nccl', False)])
def test_setup_launcher_warns_about_gloo_on_cuda(toy, monkeypatch, backend, warned):
    """With CUDA, mmengine keeps the config's back end; a config that still says gloo gets
    a warning (the shipped configs leave the back end to the launcher)."""
    cfg = _load_cfg(toy / 'toy_cfg.py')
    cfg.env_cfg.dist_cfg.backend = backend
    monkeypatch.setattr(launch, 'get_device', lambda: 'cuda')
    messages = []
    monkeypatch.setattr(launch, 'print_log', lambda msg, **kwargs: messages.append(msg))
    launch.setup_launcher(cfg, 'pytorch')
    assert cfg.launcher == 'pytorch' and cfg.env_cfg.dist_cfg.backend == backend
    assert bool(messages) == warned
    if warned:
        assert 'env_cfg.dist_cfg.backend' in messages[0] and 'nccl' in messages[0]


def test_cpu_model_wrapper_uses_no_device_ids(toy):
    cfg = _load_cfg(toy / 'toy_cfg.py')
    launch._use_cpu_model_wrapper(cfg)
    assert cfg.model_wrapper_cfg.type == 'CPUDistributedDataParallel'
    assert cfg.model_wrapper_cfg.device_ids is None

    cfg.model_wrapper_cfg = dict(type='MMDistributedDataParallel', find_unused_parameters=True)
    launch._use_cpu_model_wrapper(cfg)
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.model_wrapper_cfg.find_unused_parameters is True


def test_drop_collate_fn_scopes():
    cfg = Config(dict(
        train_dataloader=dict(collate_fn=dict(type='default_collate', _scope_='mmpretrain')),
        val_dataloader=None))
    launch.drop_collate_fn_scopes(cfg)
    assert cfg.train_dataloader.collate_fn == dict(type='default_collate')


def test_launcher_env_errors_are_explicit(monkeypatch):
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'SLURM_PROCID'):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match='torchrun'):
        launch._export_rank_env('pytorch')
    with pytest.raises(RuntimeError, match='srun'):
        launch._export_rank_env('slurm')


def test_slurm_env_is_exported(monkeypatch):
    monkeypatch.setenv('SLURM_PROCID', '3')
    monkeypatch.setenv('SLURM_NTASKS', '8')
    monkeypatch.setenv('SLURM_LOCALID', '1')
    monkeypatch.setenv('SLURM_NODELIST', 'node[1-2]')
    monkeypatch.setenv('MASTER_ADDR', 'node1')
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    launch._export_rank_env('slurm', port=29999)
    assert (os.environ['RANK'], os.environ['WORLD_SIZE'], os.environ['LOCAL_RANK'],
            os.environ['MASTER_ADDR'], os.environ['MASTER_PORT']) == ('3', '8', '1', 'node1',
                                                                      '29999')
