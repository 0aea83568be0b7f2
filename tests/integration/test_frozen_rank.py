"""A frozen rank in a 2-process run: the other stops within env_cfg.dist_cfg.timeout and
says what happened and what to do (issue 21, case 11), instead of waiting torch's 30
minutes. Two processes run tools/train.py's main (--launcher pytorch, gloo, with the
environment torchrun gives them) on a tiny HIRL config; rank 1 hangs at its second
iteration."""
import os
import socket
import time

import pytest
import torch.distributed as torch_dist
from mmengine import dist
from mmengine.config import Config
from mmengine.hooks import Hook

import forked
from hirl_mm.registry import HOOKS
from tiny_setup import hirl_config, make_image_folder
from tool_loading import load_tool

pytestmark = [pytest.mark.dist, pytest.mark.slow, pytest.mark.usefixtures('single_thread')]

TIMEOUT_S = 5


@HOOKS.register_module(force=True)
class FreezeRankOneHook(Hook):
    """Rank 1 hangs before its second iteration (a stuck data loader, a deadlock ...)."""

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if dist.get_rank() == 1 and runner.iter == 1:
            time.sleep(600)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_the_other_rank_stops_within_the_timeout(tmp_path):
    # The forked ranks must not inherit a process group of this test process.
    assert not (torch_dist.is_available() and torch_dist.is_initialized())
    data = make_image_folder(tmp_path / 'data', per_class=4)
    cfg = Config(hirl_config('SimCLR', data, tmp_path / 'work', batch_size=4, max_epochs=2,
                             warmup_epochs=1, num_clusters=(4, 2)))
    cfg.custom_hooks.append(dict(type='FreezeRankOneHook'))
    cfg.env_cfg.dist_cfg.timeout = TIMEOUT_S
    cfg.dump(str(tmp_path / 'cfg.py'))
    port = str(_free_port())

    def rank(index: int):
        def run():
            os.environ.update(RANK=str(index), LOCAL_RANK=str(index), WORLD_SIZE='2',
                              MASTER_ADDR='127.0.0.1', MASTER_PORT=port)
            load_tool('tools/train.py').main([str(tmp_path / 'cfg.py'), '--launcher',
                                              'pytorch'])
        return run

    start = time.perf_counter()
    pids = [forked.fork(rank(i), tmp_path / f'rank{i}.out') for i in (0, 1)]
    try:
        status = forked.wait(pids[0], timeout=240)
        elapsed = time.perf_counter() - start
    finally:
        for pid in pids:
            forked.kill(pid)  # the frozen one, as a launcher would
    output = (tmp_path / 'rank0.out').read_text()
    assert status == 1, output[-3000:]  # it raised (torch's timeout error)
    assert (f'a distributed collective timed out (env_cfg.dist_cfg.timeout={TIMEOUT_S} s): '
            f'another process stopped answering') in output, output[-3000:]
    assert 'Timed out waiting' in output
    assert elapsed < 120  # not torch's 30 minutes
