"""Hooks the GPU check adds to a training: step timing and what the clustering hook did."""
import time
from typing import Dict, List, Optional

import torch
from mmengine.hooks import Hook
from mmpretrain.utils import get_ori_model

from hirl_mm.engine.hooks import HierarchicalClusteringHook
from hirl_mm.engine.hooks.epoch_timer_hook import _batch_size


def model_device(runner) -> torch.device:
    """The device of the (unwrapped) model's parameters."""
    return next(get_ori_model(runner.model).parameters()).device


def _synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


class StepTimerProbe(Hook):
    """Time every training iteration, with the device synchronised around it.

    Lowest priority, as :class:`~hirl_mm.engine.hooks.EpochTimerHook`: a step includes the
    other hooks' per-iteration work (e.g. HIRL's feature bank writes). ``records`` holds
    ``dict(epoch, index, step, data, images)`` per iteration (seconds; ``index`` counts
    from 0 in each epoch), so warm-up iterations can be left out of a rate.
    """

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.records: List[Dict[str, float]] = []
        self._last = self._start = self._data = 0.
        self._device = torch.device('cpu')

    def before_train(self, runner) -> None:
        self._device = model_device(runner)

    def before_train_epoch(self, runner) -> None:
        self._last = time.perf_counter()

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        _synchronize(self._device)
        now = time.perf_counter()
        self._data, self._start = now - self._last, now

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        _synchronize(self._device)
        self._last = time.perf_counter()
        self.records.append(dict(epoch=runner.epoch, index=batch_idx,
                                 step=self._last - self._start, data=self._data,
                                 images=_batch_size(data_batch)))


class ClusteringProbe(Hook):
    """What the clustering hook saw and left, read just before it runs.

    Above normal priority, so that ``before_train_epoch`` runs before
    :class:`HierarchicalClusteringHook`'s: ``bank_current[epoch]`` says whether a round
    held before that epoch would read the training-fed bank (else it extracts).
    ``resumed_state`` is the prototypes' state when training starts (after a resume has
    loaded the checkpoint), on the CPU.
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self) -> None:
        self.bank_current: Dict[int, bool] = {}
        self.resumed_state: Optional[Dict[str, torch.Tensor]] = None

    def before_train(self, runner) -> None:
        prototypes = get_ori_model(runner.model).prototypes
        self.resumed_state = prototypes_state(prototypes)

    def before_train_epoch(self, runner) -> None:
        hook = clustering_hook(runner)
        if hook is not None and hook.is_due(runner.epoch):
            self.bank_current[runner.epoch] = hook.bank_is_current(runner)


def clustering_hook(runner) -> Optional[HierarchicalClusteringHook]:
    """The runner's :class:`HierarchicalClusteringHook` (None without one)."""
    found = [h for h in runner.hooks if isinstance(h, HierarchicalClusteringHook)]
    return found[0] if found else None


def prototypes_state(prototypes: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """A CPU copy of the prototypes' buffers."""
    return {k: v.detach().cpu().clone() for k, v in prototypes.state_dict().items()}


def register_probes() -> List[dict]:
    """Register the probes in hirl_mm's HOOKS (at run time only); returns their configs.

    Configs, not instances: mmengine prints and dumps the config of every Runner.
    """
    from hirl_mm.registry import HOOKS
    names = []
    for probe in (StepTimerProbe, ClusteringProbe):
        name = f'GpuCheck{probe.__name__}'
        HOOKS.register_module(name=name, module=probe, force=True)
        names.append(name)
    return [dict(type=name) for name in names]
