"""Record a backbone's (and neck's) calls during a wrapped algorithm's loss; find a view's rows.

HIRL adds its semantic loss on the embedding of the first view, which the wrapped SSL
algorithm already computes inside its own ``loss``. Recording the backbone's calls gives
that embedding (with its graph) without a second forward and without forking the
algorithm. Algorithms lay views out differently: MoCo / BYOL / SimSiam call the backbone
once per view, SwAV stacks views of one resolution (``[v0; v1]``), SimCLR interleaves them
(``[x0v0, x0v1, x1v0, ...]``), MoCo shuffles its keys. The rows are located by comparing
the backbone's recorded inputs with the view's images, so every such layout is found
without per-method code.
"""
from contextlib import ExitStack, contextmanager
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

BackboneCall = Tuple[Tensor, Any]


@contextmanager
def record_calls(module: nn.Module) -> Iterator[List[BackboneCall]]:
    """Record ``(input, output)`` of every forward call of ``module`` inside the block.

    Args:
        module (nn.Module): The module to watch (a backbone, or a neck, whose input is
            a backbone's output).

    Yields:
        list: ``(first positional input, output)`` per call, in call order.
    """
    calls: List[BackboneCall] = []

    def _hook(_module: nn.Module, args: tuple, output: Any) -> None:
        if args:
            calls.append((args[0], output))

    handle = module.register_forward_hook(_hook)
    try:
        yield calls
    finally:
        handle.remove()


@contextmanager
def record_calls_of(modules: Sequence[nn.Module]) -> Iterator[List[List[BackboneCall]]]:
    """:func:`record_calls` for several modules at once; yields one list per module."""
    with ExitStack() as stack:
        yield [stack.enter_context(record_calls(module)) for module in modules]


def _select(output: Any, fn) -> Any:
    """Apply a row selection to every tensor of a (nested) backbone output."""
    if isinstance(output, Tensor):
        return fn(output)
    if isinstance(output, (tuple, list)):
        return type(output)(_select(o, fn) for o in output)
    return output


_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_HASH_CHUNK = 4096  # columns hashed at a time: bounds the int64 temporary
# Columns of the first, sampled hash when locating a view (see _match_rows).
SAMPLED_COLUMNS = 256


def row_hashes(rows: Tensor, columns: Optional[Tensor] = None) -> Tensor:
    """An exact int64 hash of each row's bytes: identical rows get identical hashes.

    Integer arithmetic (wrapping mod 2**64) is exact and order-independent, unlike a float
    fingerprint, whose rounding depends on the batch and can confuse two distinct rows.

    Args:
        rows (Tensor): ``[n, F]``.
        columns (Tensor, optional): Hash only these columns (equal rows still get equal
            hashes; distinct rows may collide more often). Defaults to all.

    Returns:
        Tensor: ``[n]`` int64.
    """
    bits = rows.contiguous().view(_INT_OF_SIZE[rows.element_size()])
    if columns is not None:
        bits = bits.index_select(1, columns)
    generator = torch.Generator().manual_seed(0)
    multipliers = torch.randint(1, 2**62, (bits.shape[1], ), generator=generator)
    multipliers = (multipliers | 1).to(rows.device)  # odd: every bit of a value counts
    hashes = torch.zeros(bits.shape[0], dtype=torch.long, device=rows.device)
    for start in range(0, bits.shape[1], _HASH_CHUNK):
        chunk = bits[:, start:start + _HASH_CHUNK].long()
        hashes += (chunk * multipliers[start:start + _HASH_CHUNK]).sum(dim=1)
    return hashes


def _match_by_hash(rows: Tensor, wanted: Tensor,
                   columns: Optional[Tensor]) -> Tuple[bool, Optional[Tensor]]:
    """``(every wanted hash found, idx confirmed by comparing the rows or None)``."""
    keys, wanted_keys = row_hashes(rows, columns), row_hashes(wanted, columns)
    sorted_keys, order = torch.sort(keys)
    pos = torch.searchsorted(sorted_keys, wanted_keys).clamp_(max=len(keys) - 1)
    if not torch.equal(sorted_keys[pos], wanted_keys):
        return False, None
    idx = order[pos]
    return True, (idx if torch.equal(rows[idx], wanted) else None)


def _match_rows(inputs: Tensor, view: Tensor) -> Optional[Tensor]:
    """Indices ``idx`` with ``inputs[idx] == view`` row by row, or ``None``.

    Rows are matched by an exact hash of their bytes (sorted, then binary-searched) and the
    match is confirmed by comparing the rows, so any layout is found: alone, stacked,
    interleaved or shuffled within the batch. The hash first reads
    :data:`SAMPLED_COLUMNS` evenly spaced columns (the view is absent when those do not
    match; most of a step's hashing cost saved); only if two distinct rows agree on all of
    them are the whole rows hashed.
    """
    if inputs.shape[1:] != view.shape[1:] or inputs.shape[0] < view.shape[0] \
            or inputs.dtype != view.dtype:
        return None
    rows, wanted = inputs.flatten(1), view.flatten(1)
    if rows.shape[1] > SAMPLED_COLUMNS:
        columns = torch.linspace(0, rows.shape[1] - 1, SAMPLED_COLUMNS,
                                 device=rows.device).long()
        found, idx = _match_by_hash(rows, wanted, columns)
        if not found or idx is not None:
            return idx
    return _match_by_hash(rows, wanted, None)[1]


def locate_view(calls: List[BackboneCall], view: Tensor) -> Optional[Tuple[int, Tensor]]:
    """Which recorded call holds every row of ``view``, and at which rows.

    Args:
        calls (list): Recorded ``(input, output)`` pairs of the backbone.
        view (Tensor): ``[B, C, H, W]``, the view as the algorithm received it.

    Returns:
        tuple | None: ``(call index, row indices [B])`` of the first call that holds the
        view (rows in the order of ``view``'s rows), or ``None``.
    """
    for call_index, (inputs, _) in enumerate(calls):
        idx = _match_rows(inputs, view) if isinstance(inputs, Tensor) else None
        if idx is not None:
            return call_index, idx
    return None


def select_rows(output: Any, idx: Tensor) -> Any:
    """``output`` (a tensor or a nested tuple / list of them) restricted to rows ``idx``."""
    return _select(output, lambda t: t[idx])


def view_not_found_error(calls: List[BackboneCall], view: Tensor) -> RuntimeError:
    """The error raised when no recorded backbone call holds a view."""
    shapes = [tuple(inputs.shape) for inputs, _ in calls if isinstance(inputs, Tensor)]
    return RuntimeError(
        f'HIRL could not find the view of shape {tuple(view.shape)} among the inputs of '
        f'the backbone calls made by the wrapped algorithm (inputs seen: {shapes}). The '
        f'algorithm must pass that view\'s images to its backbone unchanged (alone, or '
        f'batched with other views in any order). Otherwise override `loss` in a subclass '
        f'of the HIRL algorithm and compute the embedding explicitly.')


def find_view_output(calls: List[BackboneCall], view: Tensor) -> Any:
    """The backbone output rows that belong to ``view``, from recorded calls.

    Args:
        calls (list): Recorded ``(input, output)`` pairs of the backbone.
        view (Tensor): ``[B, C, H, W]``, the view as the algorithm received it.

    Returns:
        The backbone output (same nesting) restricted to the ``B`` rows of ``view``,
        in the order of ``view``'s rows.

    Raises:
        RuntimeError: If no recorded call holds every row of the view.
    """
    found = locate_view(calls, view)
    if found is None:
        raise view_not_found_error(calls, view)
    call_index, idx = found
    return select_rows(calls[call_index][1], idx)
