"""What ``tools/train.py`` and ``tools/test.py`` share: launcher arguments, distributed set-up
(with a CPU / gloo fallback), input-file checks and runner construction.

Why the CPU fallback exists:
    mmengine initialises the process group itself (``Runner.setup_env`` -> ``init_dist``)
    with ``cfg.env_cfg.dist_cfg.backend``, which mmpretrain's ``default_runtime`` sets to
    ``'nccl'``, and its ``_init_dist_pytorch/_slurm/_mpi`` call ``torch.cuda.set_device``,
    which raises on a machine without a GPU. Its default DDP wrapper also passes
    ``device_ids=[LOCAL_RANK]``, which torch rejects for a CPU module. So, when no accelerator
    is available, :func:`setup_launcher` switches the backend to ``'gloo'``, initialises the
    process group here (the runner then skips its own ``init_dist``) and wraps the model with
    ``device_ids=None``. With a GPU nothing changes: mmengine does everything as usual.
"""
import argparse
import atexit
import gc
import datetime
import logging
import os
import os.path as osp
import subprocess
from typing import Any, Optional

import torch.distributed as torch_dist
from mmengine.config import Config, ConfigDict
from mmengine.device import get_device
from mmengine.logging import print_log

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')

# torch.distributed's conventional default port.
DEFAULT_MASTER_PORT = '29500'


def add_launcher_args(parser: argparse.ArgumentParser) -> None:
    """Add ``--launcher`` and ``--local_rank/--local-rank`` (mmpretrain's spelling).

    ``torch.distributed.launch`` in torch >= 2.0 passes ``--local-rank``, older versions
    ``--local_rank``; both are accepted.
    """
    parser.add_argument(
        '--launcher', choices=LAUNCHERS, default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def set_local_rank_env(local_rank: int) -> None:
    """Export ``LOCAL_RANK`` unless the launcher (torchrun, srun ...) already did.

    mmengine reads it to pick the device of each process.
    """
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(local_rank)


class MissingInputError(FileNotFoundError):
    """An input named on the command line (config, checkpoint) does not exist.

    The tools print it without a traceback: it is a usage error, not a bug.
    """


def check_file_exists(path: str, what: str, hint: str = '') -> None:
    """Fail early with a message that says which input is missing and what to do.

    URLs and other remote paths (``scheme://...``) are not checked.

    Raises:
        MissingInputError: If ``path`` is a local path that is not an existing file.
    """
    if '://' in path or osp.isfile(path):
        return
    msg = f'{what} not found: {path!r} (relative paths are resolved against {os.getcwd()!r}).'
    raise MissingInputError(f'{msg} {hint}'.strip())


def default_work_dir(config_path: str) -> str:
    """``./work_dirs/<config file name without extension>``, as in mmpretrain."""
    return osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def _accelerator_available() -> bool:
    """Whether mmengine found a device it can pin each process to (CUDA, NPU, MLU, MUSA)."""
    return get_device() not in ('cpu', 'mps')


def _export_rank_env(launcher: str, port: Optional[int] = None) -> None:
    """Export RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT for ``env://``
    initialisation, from the variables each launcher sets (as mmengine's ``init_dist`` does,
    minus ``torch.cuda.set_device``).

    Raises:
        RuntimeError: If the launcher's environment variables are missing, i.e. the script
            was not started by that launcher.
    """
    if launcher == 'pytorch':
        required = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
        missing = [k for k in required if k not in os.environ]
        if missing:
            raise RuntimeError(
                f'--launcher pytorch needs the environment variables {missing}, which '
                'torchrun sets: start the script with tools/dist_train.sh / dist_test.sh '
                '(or `python -m torch.distributed.run`), or use --launcher none.')
        return
    if launcher == 'slurm':
        if 'SLURM_PROCID' not in os.environ:
            raise RuntimeError(
                '--launcher slurm needs SLURM_PROCID/SLURM_NTASKS/SLURM_NODELIST: start the '
                'script with srun (tools/slurm_train.sh / slurm_test.sh).')
        os.environ['RANK'] = os.environ['SLURM_PROCID']
        os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
        os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
        if port is not None:
            os.environ['MASTER_PORT'] = str(port)
        os.environ.setdefault('MASTER_PORT', DEFAULT_MASTER_PORT)
        if 'MASTER_ADDR' not in os.environ:
            node_list = os.environ['SLURM_NODELIST']
            os.environ['MASTER_ADDR'] = subprocess.getoutput(
                f'scontrol show hostname {node_list} | head -n1')
        return
    if launcher == 'mpi':
        if 'OMPI_COMM_WORLD_RANK' not in os.environ:
            raise RuntimeError('--launcher mpi needs the OMPI_COMM_WORLD_* variables: start '
                               'the script with mpirun (Open MPI).')
        if 'MASTER_ADDR' not in os.environ:
            raise RuntimeError('--launcher mpi needs MASTER_ADDR (the address of rank 0).')
        os.environ['RANK'] = os.environ['OMPI_COMM_WORLD_RANK']
        os.environ['WORLD_SIZE'] = os.environ['OMPI_COMM_WORLD_SIZE']
        os.environ['LOCAL_RANK'] = os.environ.get('OMPI_COMM_WORLD_LOCAL_RANK', '0')
        os.environ.setdefault('MASTER_PORT', DEFAULT_MASTER_PORT)
        return
    raise ValueError(f'Unknown launcher {launcher!r}; expected one of {LAUNCHERS}.')


def _init_cpu_process_group(launcher: str, dist_cfg: dict) -> None:
    """Initialise torch.distributed without pinning a GPU (see the module docstring)."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        return
    kwargs = dict(dist_cfg)
    backend = kwargs.pop('backend')
    init_backend = kwargs.pop('init_backend', 'torch')
    if init_backend != 'torch':
        raise ValueError(f'env_cfg.dist_cfg.init_backend={init_backend!r} needs a GPU; on '
                         "CPU only init_backend='torch' is supported.")
    _export_rank_env(launcher, kwargs.pop('port', None))
    if kwargs.get('timeout') is not None:
        # mmengine's convention: the timeout is given in seconds.
        kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    torch_dist.init_process_group(
        backend=backend,
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **kwargs)
    # A gloo group left to interpreter shutdown can abort the process ("terminate called
    # without an active exception") after the work is done; close it in order instead.
    atexit.register(_destroy_process_group)


def _destroy_process_group() -> None:
    """Free what still holds the group (DDP reducers in reference cycles), then close it."""
    gc.collect()
    if torch_dist.is_available() and torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def _use_cpu_model_wrapper(cfg: Config) -> None:
    """Make mmengine's DDP wrapper take ``device_ids=None`` (a CPU module) instead of
    ``[LOCAL_RANK]``, which torch rejects without a GPU."""
    from mmengine.registry import MODEL_WRAPPERS
    from torch.nn.parallel import DistributedDataParallel

    wrapper_cfg = cfg.get('model_wrapper_cfg')
    if wrapper_cfg is None:
        # What mmengine builds by default, but for CPU.
        cfg.model_wrapper_cfg = dict(
            type='CPUDistributedDataParallel',  # hirl_mm.engine: also reverts SyncBN
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False),
            device_ids=None)
        return
    wrapper_type = wrapper_cfg.get('type', 'MMDistributedDataParallel')
    if isinstance(wrapper_type, str):
        wrapper_type = MODEL_WRAPPERS.get(wrapper_type)
    if isinstance(wrapper_type, type) and issubclass(wrapper_type, DistributedDataParallel):
        wrapper_cfg.setdefault('device_ids', None)


def _warn_gloo_on_cuda(cfg: Config) -> None:
    """Log a warning when a config asks for gloo although every process has a CUDA GPU.

    mmengine honours the config's back end as it is; DDP over gloo on GPUs works but moves
    every gradient through host memory. Configs should leave the back end out (mmpretrain's
    ``default_runtime`` sets NCCL, switched to gloo here on CPU-only machines).
    """
    dist_cfg = (cfg.get('env_cfg') or {}).get('dist_cfg') or {}
    if get_device() == 'cuda' and dist_cfg.get('backend') == 'gloo':
        print_log(
            "env_cfg.dist_cfg.backend='gloo' on a machine with CUDA GPUs: DDP will be slow. "
            "Remove the setting (NCCL is the default on GPUs; the launcher switches to gloo "
            "by itself on CPU-only machines) or pass --cfg-options "
            "env_cfg.dist_cfg.backend=nccl.",
            logger='current',
            level=logging.WARNING)


def setup_launcher(cfg: Config, launcher: str) -> None:
    """Record the launcher in ``cfg`` and, on a machine without GPU, prepare gloo.

    With ``launcher='none'`` or an accelerator available, only ``cfg.launcher`` is set and
    mmengine initialises distributed training itself (with CUDA, a config that asks for
    ``'gloo'`` gets a warning: configs should leave the back end to this function and
    mmpretrain's NCCL default). Without an accelerator, a ``'nccl'``
    (or missing) ``cfg.env_cfg.dist_cfg.backend`` becomes ``'gloo'`` (logged), the process
    group is initialised here and the DDP wrapper is told to use no device ids.

    Args:
        cfg: The config, modified in place; call this after ``--cfg-options`` are merged.
        launcher: One of ``'none'``, ``'pytorch'``, ``'slurm'``, ``'mpi'``.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'Unknown launcher {launcher!r}; expected one of {LAUNCHERS}.')
    cfg.launcher = launcher
    if launcher == 'none':
        return
    if _accelerator_available():
        _warn_gloo_on_cuda(cfg)
        return

    env_cfg = cfg.get('env_cfg')
    if env_cfg is None:
        env_cfg = cfg.env_cfg = ConfigDict()
    if env_cfg.get('dist_cfg') is None:
        env_cfg.dist_cfg = ConfigDict()
    dist_cfg = env_cfg.dist_cfg
    requested = dist_cfg.get('backend', 'nccl')  # mmengine's default
    # NCCL needs CUDA; gloo is torch's CPU back end.
    dist_cfg.backend = 'gloo' if requested == 'nccl' else requested
    _init_cpu_process_group(launcher, dist_cfg.to_dict())
    _use_cpu_model_wrapper(cfg)
    if requested != dist_cfg.backend and torch_dist.get_rank() == 0:
        print_log(
            f"No GPU available: using the 'gloo' distributed backend instead of "
            f"{requested!r} (env_cfg.dist_cfg.backend), world size "
            f'{torch_dist.get_world_size()}.',
            logger='current',
            level=logging.INFO)


DATALOADER_FIELDS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def drop_collate_fn_scopes(cfg: Config) -> None:
    """Remove ``_scope_`` from the dataloaders' ``collate_fn`` dicts, in place.

    A config inheriting ``mmpretrain::...`` bases gets ``_scope_`` added to each dict with a
    ``type``. mmengine's ``Runner.build_dataloader`` does not build ``collate_fn`` through a
    registry: it looks ``type`` up in mmengine's root ``FUNCTIONS`` and calls
    ``partial(fn, **rest_of_dict)``, so the collate function would receive ``_scope_`` as a
    keyword and fail (``default_collate() got an unexpected keyword argument '_scope_'``).
    The scope carries no information there (mmpretrain has no FUNCTIONS registry of its own).
    """
    for field in DATALOADER_FIELDS:
        loader = cfg.get(field)
        collate = loader.get('collate_fn') if loader is not None else None
        if isinstance(collate, dict):
            collate.pop('_scope_', None)


def build_runner(cfg: Config) -> Any:
    """``Runner.from_cfg(cfg)``, or the runner named by ``cfg.runner_type`` (built through
    the RUNNERS registry, as mmpretrain's tools do)."""
    if 'runner_type' in cfg:
        from hirl_mm.registry import RUNNERS
        return RUNNERS.build(cfg)
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg)
