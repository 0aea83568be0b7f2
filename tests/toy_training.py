"""Toy training scaffolding shared by the hook tests: a tiny dataset, a Runner config for a
short CPU training in a temporary folder, a stand-in runner for unit tests and a log reader.

Importable as ``toy_training`` because tests/conftest.py puts the tests folder on sys.path.
"""
import glob
import os
import uuid
from types import SimpleNamespace
from typing import Optional

import torch
from mmengine.logging import MessageHub, MMLogger
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset


class ToyData(Dataset):
    """8 fixed 4-d samples (2 iterations per epoch at batch size 4); ``x`` holds them all."""

    def __init__(self) -> None:
        self.x = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return dict(inputs=self.x[i])


def runner_config(work_dir, model: nn.Module, hooks: list, *, name: str, optimizer: dict,
                  max_epochs: int = 1, shuffle: bool = True, batch_size: int = 4,
                  checkpoint_interval: Optional[int] = 1, seed: Optional[int] = 0,
                  **kwargs) -> dict:
    """Keyword arguments of ``Runner`` for an epoch-based training of ``model`` on
    :class:`ToyData` in ``work_dir``.

    Args:
        work_dir: The work folder (a test's ``tmp_path``).
        model: The model to train.
        hooks: The ``custom_hooks`` (configs or hook instances).
        name: Prefix of the experiment name; a random suffix gives every Runner a fresh
            logger and message hub.
        optimizer: The optimizer config of the ``optim_wrapper``.
        max_epochs: Epochs of the default ``train_cfg``.
        shuffle: Whether the ``DefaultSampler`` shuffles.
        batch_size: Samples per iteration.
        checkpoint_interval: Epochs between checkpoints; ``None`` saves none.
        seed: The Runner's random seed; ``None`` lets it draw one (its default).
        **kwargs: Further ``Runner`` arguments (``resume``, ``load_from``, ...); they
            replace the ones above (a ``train_cfg`` replaces the epoch-based one).
    """
    checkpoint = (None if checkpoint_interval is None else
                  dict(type='CheckpointHook', interval=checkpoint_interval))
    cfg = dict(
        model=model,
        work_dir=str(work_dir),
        experiment_name=f'{name}_{uuid.uuid4().hex}',
        train_dataloader=dict(dataset=ToyData(),
                              sampler=dict(type='DefaultSampler', shuffle=shuffle),
                              batch_size=batch_size, num_workers=0,
                              collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=optimizer),
        default_hooks=dict(checkpoint=checkpoint, logger=dict(type='LoggerHook', interval=1)),
        custom_hooks=hooks,
        randomness=dict(seed=seed),
        default_scope='hirl_mm')
    cfg.update(kwargs)
    return cfg


def read_log(runner: Runner) -> str:
    """The text of the (single) log file a Runner wrote."""
    (path,) = glob.glob(os.path.join(runner.log_dir, '*.log'))
    with open(path) as f:
        return f.read()


def stub_runner(name: str, **attributes) -> SimpleNamespace:
    """A stand-in for a Runner when calling a hook's methods directly: a fresh logger and
    message hub (named ``name`` plus a random suffix) and the given ``attributes``."""
    name = f'{name}_{uuid.uuid4().hex}'
    return SimpleNamespace(logger=MMLogger.get_instance(name),
                           message_hub=MessageHub.get_instance(name), **attributes)
