"""A frozen rank in a 2-process run: the other stops within env_cfg.dist_cfg.timeout and
says what happened and what to do (issue 21, case 11), instead of waiting torch's 30
minutes. tools/train.py under torch.distributed.run, gloo, a tiny HIRL run; rank 1 sleeps
at its second iteration."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mmengine.config import Config

from tiny_setup import hirl_config, make_image_folder

pytestmark = [pytest.mark.dist, pytest.mark.slow]

REPO = Path(__file__).parents[2]
TIMEOUT_S = 5
FREEZE_MODULE = '''
import time

from mmengine import dist
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module(force=True)
class FreezeRankOneHook(Hook):
    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if dist.get_rank() == 1 and runner.iter == 1:
            time.sleep(600)  # a hung data loader, a deadlock ...
'''


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_the_other_rank_stops_within_the_timeout(tmp_path):
    data = make_image_folder(tmp_path / 'data', per_class=4)
    (tmp_path / 'freeze_rank_one.py').write_text(FREEZE_MODULE)
    cfg = Config(hirl_config('SimCLR', data, tmp_path / 'work', batch_size=4, max_epochs=2,
                             warmup_epochs=1, num_clusters=(4, 2)))
    cfg.custom_imports = dict(imports=['freeze_rank_one'], allow_failed_imports=False)
    cfg.custom_hooks.append(dict(type='FreezeRankOneHook'))
    cfg.env_cfg.dist_cfg.timeout = TIMEOUT_S
    cfg.dump(str(tmp_path / 'cfg.py'))
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=os.pathsep.join(
        [str(tmp_path), str(REPO), os.environ.get('PYTHONPATH', '')]))
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node=2',
         f'--master_port={_free_port()}', 'tools/train.py', str(tmp_path / 'cfg.py'),
         '--launcher', 'pytorch'],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    (tmp_path / 'torchrun.log').write_text(output)
    assert proc.returncode != 0, output[-3000:]
    assert (f'a distributed collective timed out (env_cfg.dist_cfg.timeout={TIMEOUT_S} s): '
            f'another process stopped answering') in output, output[-3000:]
    assert elapsed < 240  # not torch's 30 minutes; most of it is starting two processes
