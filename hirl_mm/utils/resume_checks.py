"""Find the checkpoint that ``tools/train.py --resume`` (without a path) resumes.

mmengine's auto-resume reads ``<work_dir>/last_checkpoint``; when the work directory is
mistyped or empty it logs "Auto resumed from the latest checkpoint None." and trains from
epoch 0, exiting 0; when ``last_checkpoint`` names a missing file it fails with a bare
``FileNotFoundError``. :func:`find_resume_checkpoint` resolves the checkpoint first and
refuses, naming the directory and what it holds, unless a fresh start is explicitly allowed.
"""
import glob
import os.path as osp
from typing import List, Optional

from mmengine.logging import print_log

from .launch import MissingInputError

__all__ = ['find_resume_checkpoint', 'checkpoints_in']


def checkpoints_in(work_dir: str) -> List[str]:
    """The ``.pth`` files directly in ``work_dir``, newest first."""
    return sorted(glob.glob(osp.join(work_dir, '*.pth')), key=osp.getmtime, reverse=True)


def _named_checkpoint(work_dir: str) -> Optional[str]:
    """The file ``last_checkpoint`` names, found where it says or, when the work dir was
    moved or copied (it holds an absolute path), under the same name in ``work_dir``."""
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        named = f.read().strip()
    if named and osp.isfile(named):
        return named
    moved = osp.join(work_dir, osp.basename(named))
    if named and osp.isfile(moved):
        print_log(f'last_checkpoint names {named}, which does not exist; resuming '
                  f'{moved} (the same file name in the work directory, which was moved or '
                  f'copied).', logger='current')
        return moved
    return None


def find_resume_checkpoint(work_dir: str, allow_fresh_start: bool = False) -> Optional[str]:
    """The checkpoint to resume in ``work_dir``.

    Args:
        work_dir (str): The run's work directory.
        allow_fresh_start (bool): Return None instead of raising when the directory holds
            no checkpoint at all (a job script that always passes ``--resume``).

    Returns:
        str | None: The checkpoint path; None only with ``allow_fresh_start``.

    Raises:
        MissingInputError: When there is nothing to resume, naming the directory, what it
            holds and the fix.
    """
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        found = _named_checkpoint(work_dir)
        if found is not None:
            return found
        with open(last) as f:
            problem = f'{last} names {f.read().strip() or "nothing"}, which does not exist'
    elif not osp.isdir(work_dir):
        problem = f'the work directory {work_dir} does not exist'
    else:
        problem = f'the work directory {work_dir} holds no last_checkpoint'
    present = checkpoints_in(work_dir) if osp.isdir(work_dir) else []
    if present:
        names = ', '.join(osp.basename(p) for p in present[:5])
        raise MissingInputError(
            f'--resume: {problem}, but it holds {len(present)} checkpoint(s) ({names}). '
            f'Resume one explicitly, e.g. --resume {present[0]} (the newest).')
    if allow_fresh_start:
        print_log(f'--resume: {problem}; starting a fresh run from epoch 0 '
                  f'(--allow-fresh-start).', logger='current')
        return None
    raise MissingInputError(
        f'--resume: {problem}, so there is nothing to resume (training would silently '
        f'start again from epoch 0). Check --work-dir (or the config\'s work_dir; the '
        f'default is work_dirs/<config name>, relative to the current directory '
        f'{osp.abspath(".")}). To start a fresh run when nothing is there yet (a job script '
        f'that always passes --resume), add --allow-fresh-start.')
