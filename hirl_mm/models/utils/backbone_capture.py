"""Record a backbone's calls during a wrapped algorithm's loss, and find a view's rows.

HIRL adds its semantic loss on the embedding of the first view, which the wrapped SSL
algorithm already computes inside its own ``loss``. Recording the backbone's calls gives
that embedding (with its graph) without a second forward and without forking the
algorithm. Algorithms lay views out differently: MoCo / BYOL / SimSiam call the backbone
once per view, SwAV stacks views of one resolution (``[v0; v1]``), SimCLR interleaves them
(``[x0v0, x0v1, x1v0, ...]``). The rows are located by comparing the backbone's recorded
input with the view's tensor, so any layout of these kinds is found without per-method code.
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
        module (nn.Module): The module to watch (the online backbone).

    Yields:
        list: ``(first positional input, output)`` per call, in call order.
    """
    calls: List[BackboneCall] = []

    def _hook(_module: nn.Module, args: tuple, output: Any) -> None:
        if args and isinstance(args[0], Tensor):
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


def try_find_view_output(calls: List[BackboneCall], view: Tensor) -> Optional[Any]:
    """Like :func:`find_view_output`, but ``None`` when the view is not found."""
    try:
        return find_view_output(calls, view)
    except RuntimeError:
        return None


def find_view_output(calls: List[BackboneCall], view: Tensor) -> Any:
    """The backbone output rows that belong to ``view``, from recorded calls.

    Args:
        calls (list): Recorded ``(input, output)`` pairs of the backbone.
        view (Tensor): ``[B, C, H, W]``, the view as the algorithm received it.

    Returns:
        The backbone output (same nesting) restricted to the ``B`` rows of ``view``,
        in the order of ``view``'s rows.

    Raises:
        RuntimeError: If no recorded call holds the view as one of the known layouts.
    """
    batch = view.shape[0]
    for inputs, output in calls:
        if inputs.shape[1:] != view.shape[1:] or inputs.shape[0] % batch:
            continue
        ratio = inputs.shape[0] // batch
        if ratio == 1 and torch.equal(inputs, view):
            return output
        for start in range(ratio):
            # Stacked layout: [v0; v1; ...] -> rows start*B ... (start+1)*B.
            if torch.equal(inputs[start * batch:(start + 1) * batch], view):
                return _select(output,
                               lambda t, s=start: t[s * batch:(s + 1) * batch])
        for start in range(ratio):
            # Interleaved layout: [x0v0, x0v1, x1v0, ...] -> rows start, start+ratio, ...
            if torch.equal(inputs[start::ratio], view):
                return _select(output, lambda t, s=start: t[s::ratio])
    shapes = [tuple(inputs.shape) for inputs, _ in calls]
    raise RuntimeError(
        f'HIRL could not find the view of shape {tuple(view.shape)} among the inputs of '
        f'the backbone calls made by the wrapped algorithm (inputs seen: {shapes}). The '
        f'algorithm must pass that view to its backbone unchanged, alone, stacked or '
        f'interleaved with other views. Otherwise override `_view_embedding` in a '
        f'subclass of the HIRL algorithm to return the embedding explicitly.')
