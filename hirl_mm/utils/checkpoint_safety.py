"""Let ``torch.load``'s safe (weights-only) mode read mmengine's own checkpoints.

Why this exists:
    Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``: the pickle is read by a
    restricted unpickler that only rebuilds tensors, containers, primitives and globals that
    were explicitly allow-listed. mmengine 0.10.7 calls ``torch.load`` without
    ``weights_only``, so ``mmengine.runner.load_checkpoint``, ``Runner(load_from=...)`` and
    ``Runner(resume=True)`` fail on the checkpoints mmengine itself writes, e.g.::

        Unsupported global: GLOBAL mmengine.logging.history_buffer.HistoryBuffer ...

    because the message hub's state (saved under ``checkpoint['message_hub']``) holds
    ``HistoryBuffer`` objects backed by numpy arrays, plus numpy scalars (``eta``,
    ``best_score``) and non-scalar metric values (numpy arrays).

    Passing ``weights_only=False`` everywhere would make any downloaded checkpoint able to run
    arbitrary code on load. Instead, :func:`allow_mmengine_checkpoint_types` allow-lists
    exactly the globals mmengine stores (found empirically by training mmengine runners and
    reading their checkpoints with ``torch.serialization.get_unsafe_globals_in_checkpoint``),
    so loading stays safe: a pickle naming any other callable (``os.system``, a custom class)
    is still refused.

What is allow-listed (and why):
    * ``mmengine.logging.history_buffer.HistoryBuffer``: every scalar the message hub logs
      (``train/loss``, ``train/lr``, ``val/...``) is kept in one.
    * ``builtins.getattr``, but only as a restricted stand-in that answers
      ``getattr(HistoryBuffer, 'min' | 'max' | 'current' | 'mean')``: ``HistoryBuffer``'s
      ``__getstate__`` stores its statistics methods, which pickle (protocol 2) writes as
      ``getattr(HistoryBuffer, 'mean')``. The real ``getattr`` would hand a malicious pickle
      any attribute of any reachable object (``__globals__``, ``__builtins__`` ...).
    * ``numpy.core.multiarray._reconstruct`` and ``numpy.ndarray``: ``HistoryBuffer`` stores
      its history as arrays; non-scalar metrics are stored as arrays.
    * ``numpy.core.multiarray.scalar``: numpy scalars (``eta``, ``best_score``, metrics).
    * ``numpy.dtype`` and the concrete dtype classes (``numpy.dtypes.Float64DType`` ...) of
      booleans, numbers, bytes and strings: arrays and scalars pickle their dtype as
      ``numpy.dtype('f8', ...)`` followed by a ``BUILD`` on the resulting instance, whose type
      (numpy >= 1.25: a ``numpy.dtypes`` class) must be allow-listed too. Object, void
      (structured) and datetime dtypes are left out: mmengine does not store them.

    The numpy globals are registered under both their numpy 1.x (``numpy.core.multiarray``)
    and numpy 2.x (``numpy._core.multiarray``) names, so checkpoints written under either
    numpy load under the installed one.
"""
import pickle
from typing import Any, Callable, List, Tuple, Union

import numpy as np
import torch

# ``HistoryBuffer``'s default statistics, the only attributes pickled through ``getattr``.
_HISTORY_BUFFER_STATISTICS = frozenset({'min', 'max', 'current', 'mean'})

# numpy type codes of the dtypes mmengine may store: bool, (unsigned) integers, floats,
# complex, bytes and str. Not 'O' (object), 'V' (structured) nor 'M'/'m' (datetimes).
_ALLOWED_DTYPE_CODES = '?bhilqpBHILQPefdgFDGSU'

_installed = False


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """A ``getattr`` that only returns ``HistoryBuffer``'s default statistics methods.

    Registered under the name ``builtins.getattr`` for the weights-only unpickler.

    Raises:
        pickle.UnpicklingError: For anything but ``getattr(HistoryBuffer, <statistic>)``.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    if obj is HistoryBuffer and name in _HISTORY_BUFFER_STATISTICS:
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'Refusing getattr({obj!r}, {name!r}) while loading a checkpoint: hirl_mm only allows '
        f'getattr(HistoryBuffer, one of {sorted(_HISTORY_BUFFER_STATISTICS)}). Load the file '
        'with weights_only=False only if you trust where it comes from.')


def _numpy_multiarray_globals() -> List[Tuple[Callable, str]]:
    """``_reconstruct`` and ``scalar`` under the numpy 1.x and 2.x module names."""
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x (1.26 also ships a numpy._core shim; either is fine)
        from numpy.core import multiarray
    entries = []
    for name in ('_reconstruct', 'scalar'):
        fn = getattr(multiarray, name)
        for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            entries.append((fn, f'{module}.{name}'))
    return entries


def _numpy_dtype_classes() -> List[type]:
    """The concrete dtype classes of the allowed dtype kinds (numpy >= 1.25 has one per
    kind, e.g. ``numpy.dtypes.Float64DType``; older numpy just gives ``numpy.dtype``)."""
    classes = []
    for code in _ALLOWED_DTYPE_CODES:
        try:
            cls = type(np.dtype(code))
        except TypeError:  # a type code this numpy does not know
            continue
        if cls not in classes:
            classes.append(cls)
    return classes


def mmengine_checkpoint_safe_globals() -> List[Union[Callable, Tuple[Callable, str]]]:
    """The entries :func:`allow_mmengine_checkpoint_types` passes to
    ``torch.serialization.add_safe_globals``.

    Returns:
        list: Classes/functions, or ``(object, 'full.dotted.name')`` pairs for objects that
        pickles name differently from the installed object's ``__module__.__qualname__``.
    """
    from mmengine.logging.history_buffer import HistoryBuffer
    return [
        HistoryBuffer,
        (_history_buffer_getattr, 'builtins.getattr'),
        np.ndarray,
        np.dtype,
        *_numpy_dtype_classes(),
        *_numpy_multiarray_globals(),
    ]


def _torch_supports_named_safe_globals() -> bool:
    """Whether this torch loads weights-only by default and accepts ``(obj, name)`` entries
    (both since torch 2.6)."""
    from mmengine.utils import digit_version
    return (hasattr(torch.serialization, 'add_safe_globals')
            and digit_version(torch.__version__) >= digit_version('2.6.0'))


def allow_mmengine_checkpoint_types() -> None:
    """Allow-list, for ``torch.load(weights_only=True)``, the types mmengine checkpoints hold.

    Called when ``hirl_mm`` is imported; calling it again does nothing. On torch < 2.6
    (``weights_only=False`` by default) it does nothing either.

    See the module docstring for the list and why each entry is needed. Anything else (e.g.
    a pickle naming ``os.system`` or an arbitrary class) is still refused by ``torch.load``.
    """
    global _installed
    if _installed or not _torch_supports_named_safe_globals():
        return
    torch.serialization.add_safe_globals(mmengine_checkpoint_safe_globals())
    _installed = True
