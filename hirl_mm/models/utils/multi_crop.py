"""Multi-crop batches: the views of a batch, grouped so that each group is one forward.

DINO / iBOT / SwAV feed 2 global crops and several smaller local crops; the reference
``MultiCropWrapper`` runs the backbone once per run of consecutive crops of the same
resolution. The grouping here is the same, so a batch costs 2 forwards (globals, locals).
"""
from typing import List, Sequence, Tuple

import torch
from torch import Tensor

__all__ = ['split_global_local', 'group_by_resolution']


def split_global_local(inputs: Sequence[Tensor], num_global_crops: int
                       ) -> Tuple[List[Tensor], List[Tensor]]:
    """The global and the local crops of a list of views, checked.

    Args:
        inputs (Sequence[Tensor]): ``[B, C, H, W]`` views, global crops first (as
            mmpretrain's ``MultiView`` with ``num_views=[1, 1, n]`` packs them).
        num_global_crops (int): How many views are global crops.

    Returns:
        tuple[list[Tensor], list[Tensor]]: Global crops, local crops.

    Raises:
        ValueError: If there are too few views or the global crops differ in size.
    """
    if not isinstance(inputs, (list, tuple)) or len(inputs) < num_global_crops:
        got = len(inputs) if isinstance(inputs, (list, tuple)) else type(inputs).__name__
        raise ValueError(f'Expected a list of at least {num_global_crops} views (global '
                         f'crops first), got {got}; use MultiView in the train pipeline.')
    global_crops, local_crops = list(inputs[:num_global_crops]), list(inputs[num_global_crops:])
    sizes = {tuple(crop.shape[1:]) for crop in global_crops}
    if len(sizes) != 1:
        raise ValueError(f'The {num_global_crops} global crops must have one size, got '
                         f'{sorted(sizes)}; check the order of MultiView\'s pipelines.')
    return global_crops, local_crops


def group_by_resolution(crops: Sequence[Tensor]) -> List[Tensor]:
    """Concatenate runs of consecutive crops of equal size along the batch.

    Args:
        crops (Sequence[Tensor]): ``[B, C, H, W]`` crops.

    Returns:
        list[Tensor]: One ``[n * B, C, H, W]`` tensor per run, in order (crop-major).
    """
    groups: List[List[Tensor]] = []
    for crop in crops:
        if groups and groups[-1][0].shape[1:] == crop.shape[1:]:
            groups[-1].append(crop)
        else:
            groups.append([crop])
    return [torch.cat(group) for group in groups]
