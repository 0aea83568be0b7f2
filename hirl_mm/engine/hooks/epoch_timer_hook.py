"""Where an epoch's wall time goes: training steps, data loading, HIRL's clustering round,
other hooks."""
import time
from typing import Dict, List, Optional

from mmengine.hooks import Hook
from mmengine.runner import Runner

from hirl_mm.engine.hooks.hierarchical_clustering_hook import LAST_ROUND_INFO
from hirl_mm.registry import HOOKS

__all__ = ['EpochTimerHook']


@HOOKS.register_module()
class EpochTimerHook(Hook):
    """Time every training epoch, split into its parts, and log the split.

    An epoch's window runs from the end of the previous epoch (or of ``before_train``) to
    the end of this one, so every second of the run is in exactly one epoch. It is split
    into:

    - ``steps``: the iterations themselves (forward, backward, update, per-iteration hooks);
    - ``data``: waiting for the next batch between iterations;
    - ``extract`` and ``cluster``: the HIRL clustering round held before this epoch, as
      :class:`HierarchicalClusteringHook` timed it (0 in epochs without a round);
    - ``other``: everything else (other epoch hooks: checkpoints, monitors, logging).

    The hook has the lowest priority, so the clustering round (``before_train_epoch``) and
    the checkpoint (``after_train_epoch``) fall inside the window. Per-epoch records are
    kept in :attr:`records` (with the window's ``start`` and ``end`` on
    ``time.perf_counter``'s clock), logged, and sent to the visualizer as ``time/epoch_*``.
    Timings are this process's (rank 0's in the log).
    """

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.records: List[Dict[str, float]] = []
        self._mark = self._last = 0.
        self._steps = self._data = 0.
        self._num_images = 0
        self._iter_start: Optional[float] = None

    def before_train(self, runner: Runner) -> None:
        self._mark = time.perf_counter()

    def before_train_epoch(self, runner: Runner) -> None:
        self._last = time.perf_counter()
        self._steps = self._data = 0.
        self._num_images = 0

    def before_train_iter(self, runner: Runner, batch_idx: int, data_batch=None) -> None:
        now = time.perf_counter()
        self._data += now - self._last
        self._iter_start = now

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        now = time.perf_counter()
        if self._iter_start is not None:
            self._steps += now - self._iter_start
        self._iter_start = None
        self._last = now
        self._num_images += _batch_size(data_batch)

    def after_train_epoch(self, runner: Runner) -> None:
        now, start = time.perf_counter(), self._mark
        total = now - start
        self._mark = now
        round_info = runner.message_hub.get_info(LAST_ROUND_INFO) or {}
        # A round that ended in this window (not, e.g., a re-clustering in before_train).
        held_now = start <= round_info.get('end', -1.) <= now
        extract = float(round_info['extract_seconds']) if held_now else 0.
        cluster = float(round_info['cluster_seconds']) if held_now else 0.
        # start / end (perf_counter seconds) show that the windows tile the run.
        record = dict(epoch=runner.epoch + 1, start=start, end=now, total=total,
                      steps=self._steps, data=self._data, extract=extract, cluster=cluster,
                      other=max(total - self._steps - self._data - extract - cluster, 0.),
                      images=self._num_images)
        self.records.append(record)
        hirl = (f' + HIRL round {extract + cluster:.1f} s (extraction {extract:.1f} s, '
                f'clustering {cluster:.1f} s)' if held_now else '')
        runner.logger.info(
            f'Epoch {record["epoch"]} took {total:.1f} s: steps {self._steps:.1f} s + data '
            f'{self._data:.1f} s{hirl} + other hooks {record["other"]:.1f} s '
            f'({self._num_images} images)')
        runner.visualizer.add_scalars(
            {f'time/epoch_{key}': float(record[key])
             for key in ('total', 'steps', 'data', 'extract', 'cluster', 'other')},
            step=runner.epoch + 1)


def _batch_size(data_batch) -> int:
    """Images in one (collated) batch; 0 when it cannot be told."""
    if isinstance(data_batch, dict):
        inputs = data_batch.get('inputs')
        if isinstance(inputs, (list, tuple)) and inputs:
            inputs = inputs[0]  # multi-view: one tensor per view
        if hasattr(inputs, 'shape'):
            return int(inputs.shape[0])
        samples = data_batch.get('data_samples')
        if isinstance(samples, (list, tuple)):
            return len(samples)
    return 0
