"""Read local checkpoint files with messages that name the file and the problem.

torch's own errors on a bad file blame nothing useful: an empty file ends in a bare
``EOFError``, a text file in ``KeyError: 101``, random bytes or a pickle naming a callable in
an ``UnpicklingError`` whose first advice is to re-run with ``weights_only=False``, the one
thing that must not be done with a file of unknown origin (it runs the pickle's code).
:func:`install_checkpoint_reader` puts :func:`read_checkpoint_file` in place of mmengine's
local-file loader, so every load through mmengine (``Runner(resume=...)``, ``load_from``,
``load_checkpoint``, ``Pretrained`` init, the evaluation tools) reports instead which file
is unreadable and that it is corrupt or not a checkpoint. Loading stays weights-only.
"""
import os.path as osp
import re
from typing import Any, Optional

import torch
from mmengine.runner.checkpoint import CheckpointLoader

from .launch import MissingInputError

__all__ = ['UnreadableCheckpointError', 'read_checkpoint_file', 'install_checkpoint_reader']

# torch names a refused callable "Unsupported global: GLOBAL os.system" or "unsupported
# GLOBAL posix.system whose module posix is blocked", depending on the case.
_UNSUPPORTED_GLOBAL = re.compile(r'unsupported (?:global: )?GLOBAL ([\w.]+)', re.IGNORECASE)
# Lines of torch's message that are advice, not a description of the file.
_ADVICE = ('weights_only', 'Please file an issue', 'Check the documentation')


class UnreadableCheckpointError(MissingInputError):
    """A checkpoint file is empty, corrupt, not a checkpoint, or refused as unsafe.

    A :class:`MissingInputError`, so the tools print it without a traceback.
    """


def _reason(text: str) -> str:
    """The first sentence of torch's message that describes the file, not its advice."""
    for line in text.splitlines():
        line = line.strip()
        if line and not any(advice in line for advice in _ADVICE):
            return line.split('. ')[0].rstrip('.')[:200]
    return 'no detail'


def _unreadable(filename: str, error: Exception) -> UnreadableCheckpointError:
    text = str(error)
    unsafe = _UNSUPPORTED_GLOBAL.search(text)
    if unsafe:
        return UnreadableCheckpointError(
            f'Refused to load {filename}: its pickle calls {unsafe.group(1)}, which no '
            f'checkpoint written by mmengine / hirl_mm holds and which could run code on '
            f'this machine. It is corrupt, not a checkpoint, or crafted; it is not loaded. '
            f'(A checkpoint you wrote with extra Python objects: save only tensors and '
            f'plain containers.)')
    return UnreadableCheckpointError(
        f'Cannot read the checkpoint {filename}: the file is corrupt (e.g. truncated by an '
        f'interrupted save or copy) or not a checkpoint ({type(error).__name__}: '
        f'{_reason(text)}). '
        f'Pass a .pth file written by tools/train.py, or copy it again.')


def read_checkpoint_file(filename: str, map_location: Optional[Any] = None) -> Any:
    """``torch.load`` a local file (weights-only), explaining unreadable files.

    Args:
        filename (str): Path of the file (``~`` is expanded).
        map_location: As for ``torch.load``.

    Returns:
        The loaded object (usually a dict).

    Raises:
        FileNotFoundError: If there is no such file.
        UnreadableCheckpointError: If the file is empty, corrupt, not a checkpoint, or
            holds objects safe loading refuses; the message names the file.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    if osp.getsize(filename) == 0:
        raise UnreadableCheckpointError(
            f'The checkpoint {filename} is empty (0 bytes): an interrupted save or copy, '
            f'not a checkpoint. Pass another .pth file, or copy it again.')
    try:
        return torch.load(filename, map_location=map_location)
    except (OSError, MemoryError):
        raise  # the file system's or the machine's problem, said as is
    except RuntimeError as error:
        if 'PytorchStreamReader' not in str(error) and 'zip' not in str(error).lower():
            raise  # e.g. map_location asks for a missing device: not the file's fault
        raise _unreadable(filename, error) from None
    except Exception as error:  # anything the unpickler trips on: the file's content
        # from None: torch's text advises weights_only=False, which must not be followed.
        raise _unreadable(filename, error) from None


def load_from_local(filename: str, map_location: Optional[Any] = None) -> Any:
    return read_checkpoint_file(filename, map_location)


def install_checkpoint_reader() -> None:
    """Make mmengine load local checkpoint files with :func:`read_checkpoint_file`
    (its ``CheckpointLoader`` scheme for plain paths). Calling it again does nothing."""
    # mmengine logs the loader's name minus 'load_from' ("by local backend").
    if CheckpointLoader._schemes.get('') is not load_from_local:
        CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
