"""mmengine's CheckpointHook, but a kill at any moment of a save leaves a resumable run.

mmengine 0.10's ``CheckpointHook`` deletes the oldest checkpoint (``max_keep_ckpts``) before
it writes the new one, writes the new one in place, and then ``last_checkpoint``. A kill
during the write leaves a truncated (often 0-byte) file and, with ``max_keep_ckpts=1``, no
complete checkpoint at all, while ``last_checkpoint`` names a deleted file: ``--resume``
then fails. :class:`AtomicCheckpointHook` writes in this order instead:

1. the checkpoint to ``<name>.partial`` (flushed to disk), then renamed to ``<name>``
   (``os.replace``: atomic on a local file system);
2. ``last_checkpoint``, the same way;
3. only then the removal of the checkpoints ``max_keep_ckpts`` no longer keeps.

Whenever the process dies, ``last_checkpoint`` names a complete checkpoint (the new one or
the previous one). Leftovers of a kill (a ``.partial`` file, an outdated checkpoint not yet
removed) are cleaned up when the run resumes. Non-local storage (``backend_args`` for
Ceph / S3 ...) has no atomic rename: there it saves as mmengine does. ``tools/train.py``
uses this hook in place of ``CheckpointHook``; the settings are CheckpointHook's.
"""
import os
import os.path as osp
from typing import Any, Dict, List, Optional

from mmengine.dist import is_main_process
from mmengine.fileio.backends import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.runner import Runner

from hirl_mm.registry import HOOKS

__all__ = ['AtomicCheckpointHook', 'PARTIAL_SUFFIX', 'write_file_atomically',
           'use_atomic_checkpoint_hook']

# Suffix of a checkpoint being written (never a name mmengine or a '*.pth' glob reads).
PARTIAL_SUFFIX = '.partial'
# Message-hub info (saved with each checkpoint): the steps whose checkpoints are to be
# removed once that checkpoint is complete, so a resume finishes the removal.
OUTDATED_INFO = 'hirl/outdated_ckpt_ids'


def _fsync_dir(path: str) -> None:
    """Flush a directory's entries (the rename) to disk, where the OS allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _commit(partial: str, final: str) -> None:
    """Flush ``partial`` to disk and rename it to ``final`` in one step."""
    with open(partial, 'rb+') as f:
        os.fsync(f.fileno())
    os.replace(partial, final)
    _fsync_dir(osp.dirname(osp.abspath(final)))


def write_file_atomically(path: str, text: str) -> None:
    """Write a small text file so that readers see the old or the new content, never a
    part.

    Args:
        path (str): The file.
        text (str): Its new content.
    """
    partial = path + PARTIAL_SUFFIX
    with open(partial, 'w') as f:
        f.write(text)
    _commit(partial, path)


@HOOKS.register_module()
@MMENGINE_HOOKS.register_module()  # the root: found from every scope (mmdet, mmseg ...)
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) whose saves survive a kill at any moment.

    See the module docstring for the order of the writes and what a resume cleans up.
    """

    def before_train(self, runner: Runner) -> None:
        super().before_train(runner)
        if is_main_process() and self._is_local():
            self._clean_up(runner)

    def _is_local(self) -> bool:
        return self.file_client_args is None and isinstance(self.file_backend, LocalBackend)

    def _path(self, step: int) -> str:
        return osp.join(self.out_dir, self.filename_tmpl.format(step))

    def _clean_up(self, runner: Runner) -> None:
        """Remove what a killed save left: partial files, and the checkpoints the resumed
        one had made outdated."""
        if not osp.isdir(self.out_dir):
            return
        for name in sorted(os.listdir(self.out_dir)):
            if name.endswith(PARTIAL_SUFFIX):
                os.remove(osp.join(self.out_dir, name))
                runner.logger.warning(f'Removed {name} from {self.out_dir}: an incomplete '
                                      f'checkpoint left by an interrupted save.')
        pending = runner.message_hub.get_info(OUTDATED_INFO) or []
        self._remove_steps(pending)
        runner.message_hub.update_info(OUTDATED_INFO, [])

    def _remove_steps(self, steps: List[int]) -> None:
        for step in steps:
            path = self._path(step)
            if osp.isfile(path):
                os.remove(path)

    def _save_checkpoint_with_step(self, runner: Runner, step: int,
                                   meta: Optional[Dict]) -> None:
        if not self._is_local():
            super()._save_checkpoint_with_step(runner, step, meta)
            return
        outdated: List[int] = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            while len(self.keep_ckpt_ids) >= self.max_keep_ckpts:
                outdated.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        runner.message_hub.update_info(OUTDATED_INFO, outdated)

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self._path(step)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        # 1. The new checkpoint, complete, under its name (rank 0 writes; the others
        # take part for sharded states, as in CheckpointHook).
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename + PARTIAL_SUFFIX,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        _commit(self.last_ckpt + PARTIAL_SUFFIX, self.last_ckpt)
        # 2. last_checkpoint names it; 3. only now the outdated ones go.
        write_file_atomically(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        self._remove_steps(outdated)


def use_atomic_checkpoint_hook(cfg: Any) -> bool:
    """Make a config's ``default_hooks.checkpoint`` an :class:`AtomicCheckpointHook`, if
    it is mmengine's ``CheckpointHook`` (its arguments are kept).

    Args:
        cfg (Config): The run's config, changed in place.

    Returns:
        bool: Whether the hook was replaced.
    """
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if not isinstance(hook, dict) or hook.get('type') not in (
            'CheckpointHook', 'mmengine.CheckpointHook', CheckpointHook):
        return False
    hook['type'] = 'AtomicCheckpointHook'  # in mmengine's root registry: every scope finds it
    return True
