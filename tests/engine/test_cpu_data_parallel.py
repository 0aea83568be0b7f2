import socket

import torch
import torch.distributed as torch_dist
from mmengine.registry import MODEL_WRAPPERS
from torch import nn

from hirl_mm.engine import CPUDistributedDataParallel


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_reverts_syncbn_and_wraps_on_cpu():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.SyncBatchNorm(4), nn.ReLU())
    torch_dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{_port()}',
                                  rank=0, world_size=1)
    try:
        wrapped = MODEL_WRAPPERS.build(dict(type='CPUDistributedDataParallel', module=model))
        assert isinstance(wrapped, CPUDistributedDataParallel)
        assert not any(isinstance(m, nn.SyncBatchNorm) for m in wrapped.modules())
        out = wrapped(torch.randn(2, 3, 8, 8))  # runs on CPU, BatchNorm in train mode
        out.sum().backward()
    finally:
        torch_dist.destroy_process_group()
