"""Semantic paths: lifting level-0 clusters through the hierarchy, negative sampling.

A *semantic path* is the tuple of an image's clusters at every level of the hierarchy,
``(c_0, ..., c_{L-1})``, where each ``c_{l+1} = parents[l][c_l]``. A path is therefore
fully determined by its level-0 cluster, which is what makes negative sampling cheap:
draw level-0 clusters and lift them.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

__all__ = ['lift_paths', 'sample_negative_paths']

DeviceType = Union[str, torch.device, None]


def _is_integer_tensor(t: Tensor) -> bool:
    """Whether ``t`` holds integers usable as indices (bool is not accepted)."""
    return not t.dtype.is_floating_point and not t.dtype.is_complex and t.dtype != torch.bool


def _check_parents(parents: Sequence[Tensor]) -> None:
    """Check that ``parents`` is a chain of 1-D integer tensors (shapes and dtypes only)."""
    for l, parent in enumerate(parents):
        if not isinstance(parent, Tensor) or parent.dim() != 1:
            raise ValueError(f'parents[{l}] must be a 1-D tensor, got '
                             f'{getattr(parent, "shape", type(parent))}')
        if not _is_integer_tensor(parent):
            raise ValueError(f'parents[{l}] must be an integer tensor, got {parent.dtype}')
        if parent.numel() == 0:
            raise ValueError(f'parents[{l}] is empty')


def _out_of_range(t: Tensor, bound: Optional[int]) -> Tensor:
    """0-dim bool tensor: whether ``t`` has an entry outside ``[0, bound)``."""
    bad = t < 0
    if bound is not None:
        bad = bad | (t >= bound)
    return bad.any()


def check_index_ranges(checks: Sequence[Tuple[str, Tensor, Optional[int]]]) -> None:
    """Check that integer tensors lie in ``[0, bound)``, with one host synchronisation.

    The common (valid) case costs a single sync for all tensors together; only when
    something is out of range are the offenders located for the message.

    Args:
        checks (Sequence[tuple]): ``(name, tensor, bound)`` triples; a ``None`` bound
            checks non-negativity only.

    Raises:
        ValueError: If any tensor holds an index outside ``[0, bound)``.
    """
    checks = [(n, t, b) for n, t, b in checks if t.numel() > 0]
    if not checks:
        return
    flags = torch.stack([_out_of_range(t, b).to(checks[0][1].device) for _, t, b in checks])
    if not bool(flags.any()):
        return
    for name, t, bound in checks:
        if bool(_out_of_range(t, bound)):
            where = f'[0, {bound})' if bound is not None else 'the non-negative integers'
            raise ValueError(f'{name} holds indices outside {where}: '
                             f'min {int(t.min())}, max {int(t.max())}')


def _chain_checks(parents: Sequence[Tensor]) -> List[Tuple[str, Tensor, Optional[int]]]:
    """Range checks of a parent chain: ``parents[l]`` indexes level l+1.

    The number of top-level clusters is not known here, so the last parent is only checked
    to be non-negative (negative indices would silently wrap around).
    """
    return [(f'parents[{l}]', parent, parents[l + 1].numel() if l + 1 < len(parents) else None)
            for l, parent in enumerate(parents)]


def lift_paths(level0: Tensor, parents: Sequence[Tensor]) -> Tensor:
    """Lift level-0 cluster indices to full semantic paths.

    Args:
        level0 (Tensor): Integer tensor of any shape ``[...]`` holding level-0 cluster
            indices.
        parents (Sequence[Tensor]): ``L - 1`` integer tensors; ``parents[l]`` has one entry
            per level-l cluster giving its level-(l+1) cluster. Moved to ``level0``'s
            device if needed.

    Returns:
        Tensor: int64 tensor of shape ``[..., L]`` with ``L = len(parents) + 1``; entry
        ``[..., 0]`` is ``level0`` and ``[..., l+1] = parents[l][[..., l]]``.

    Raises:
        ValueError: If ``level0`` or a parent is not an integer tensor, a parent is not
            1-D, or an index lies outside the range of the level it indexes.
    """
    if not isinstance(level0, Tensor) or not _is_integer_tensor(level0):
        raise ValueError(f'level0 must be an integer tensor, got '
                         f'{getattr(level0, "dtype", type(level0))}')
    _check_parents(parents)
    parents = [p.to(device=level0.device, dtype=torch.long) for p in parents]
    level0 = level0.long()
    checks = _chain_checks(parents)
    if parents:
        checks.insert(0, ('level0', level0, parents[0].numel()))
    check_index_ranges(checks)
    return _lift(level0, parents)


def _lift(level0: Tensor, parents: Sequence[Tensor]) -> Tensor:
    """Unchecked lifting; ``level0`` and ``parents`` are int64 on the same device."""
    levels = [level0]
    for parent in parents:
        # Advanced indexing keeps the shape of the index: [...] -> [...].
        levels.append(parent[levels[-1]])
    return torch.stack(levels, dim=-1)


def sample_negative_paths(num_images: int,
                          num_neg_path: int,
                          num_level0: int,
                          parents: Sequence[Tensor],
                          generator: Optional[torch.Generator] = None,
                          device: DeviceType = None) -> Tensor:
    """Draw random negative semantic paths for a batch of images.

    For each image, ``num_neg_path`` level-0 clusters are drawn uniformly at random with
    replacement and lifted to full paths through ``parents``. Some draws may coincide with
    an image's own path; the loss masks those out (they are not *true* negatives).

    Args:
        num_images (int): Number of images ``N`` in the batch.
        num_neg_path (int): Number of negative paths ``P`` per image.
        num_level0 (int): Number of level-0 clusters ``K_0``; must equal
            ``len(parents[0])`` when there is more than one level.
        parents (Sequence[Tensor]): ``L - 1`` parent tensors, see :func:`lift_paths`.
        generator (torch.Generator, optional): Random generator; None uses the global
            generator of the device (so training randomness follows the global seed).
        device (str | torch.device, optional): Device of the result. Defaults to the
            generator's device if one is given, else the device of ``parents[0]``, else
            CPU.

    Returns:
        Tensor: int64 tensor of shape ``[N, P, L]``.

    Raises:
        ValueError: On negative sizes, ``num_level0 < 1``, a mismatch between
            ``num_level0`` and ``parents[0]``, or an inconsistent parent chain.
    """
    if num_images < 0 or num_neg_path < 0:
        raise ValueError(f'num_images and num_neg_path must be >= 0, got '
                         f'{num_images} and {num_neg_path}')
    if num_level0 < 1:
        raise ValueError(f'num_level0 must be >= 1, got {num_level0}')
    _check_parents(parents)
    if parents and parents[0].numel() != num_level0:
        raise ValueError(f'num_level0 ({num_level0}) does not match len(parents[0]) '
                         f'({parents[0].numel()})')
    if device is None:
        if generator is not None:
            device = generator.device
        elif parents:
            device = parents[0].device
        else:
            device = 'cpu'
    device = torch.device(device)
    parents = [p.to(device=device, dtype=torch.long) for p in parents]
    # Level-0 draws are in range by construction; only the chain itself needs checking.
    check_index_ranges(_chain_checks(parents))
    level0 = torch.randint(num_level0, (num_images, num_neg_path), generator=generator,
                           device=device)
    return _lift(level0, parents)
