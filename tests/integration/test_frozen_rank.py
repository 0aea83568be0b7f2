"""A frozen rank in a 2-process run: the other stops within env_cfg.dist_cfg.timeout and
says what happened and what to do (issue 21, case 11), instead of waiting torch's 30
minutes. Two tools/train.py processes (--launcher pytorch, gloo), a tiny HIRL run; rank 1
sleeps at its second iteration."""
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
    # The two ranks started as torchrun would (without its extra process): rank 1 freezes.
    env = dict(os.environ, OMP_NUM_THREADS='1', WORLD_SIZE='2', MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(_free_port()), PYTHONPATH=os.pathsep.join(
                   [str(tmp_path), str(REPO), os.environ.get('PYTHONPATH', '')]))
    command = [sys.executable, 'tools/train.py', str(tmp_path / 'cfg.py'), '--launcher',
               'pytorch']
    start = time.perf_counter()
    ranks = [subprocess.Popen(command, cwd=REPO, env=dict(env, RANK=str(r), LOCAL_RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in (0, 1)]
    try:
        output, _ = ranks[0].communicate(timeout=300)
        elapsed = time.perf_counter() - start
    finally:
        for rank in ranks:
            rank.kill()  # the frozen one (a launcher would do the same)
        ranks[1].communicate()
    (tmp_path / 'rank0.log').write_text(output)
    assert ranks[0].returncode != 0, output[-3000:]
    assert (f'a distributed collective timed out (env_cfg.dist_cfg.timeout={TIMEOUT_S} s): '
            f'another process stopped answering') in output, output[-3000:]
    assert elapsed < 240  # not torch's 30 minutes; most of it is starting two processes
