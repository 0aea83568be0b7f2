"""Rows an encoder computed for samples of other ranks (MoCo's cross-rank key shuffle).

MoCo shuffles its key batch across the ranks before the key encoder (``batch_shuffle_ddp``,
for BatchNorm), so the rows a rank's key encoder computes belong to samples that other
ranks loaded. The training-fed feature bank keeps each row on the rank that computed it;
only the samples' indices and an exact hash of each key image travel between the ranks
(``2 x B`` integers per rank and step), never the images or the features.
"""
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from hirl_mm.utils.dist_utils import all_gather_rows
from .backbone_capture import BackboneCall, row_hashes


def shuffled_view_rows(encoder, calls: List[List[BackboneCall]], view: Tensor,
                       sample_idx: Tensor) -> Optional[Tuple[Tensor, Tensor]]:
    """The encoder's rows of a view whose images were shuffled across the ranks.

    Collective: every rank calls it in the same step.

    Args:
        encoder (EmbeddingEncoder): The encoder whose calls were recorded.
        calls (list): Its recorded calls (backbone first, then neck).
        view (Tensor): ``[B, C, H, W]`` this rank's images of the shuffled view.
        sample_idx (Tensor): ``[B]`` their sample indices.

    Returns:
        tuple[Tensor, Tensor] | None: ``(sample_idx, rows)`` of the rows this rank's
        encoder computed (detached), or None when no recorded call holds only images of
        the view (then the caller falls back to another embedding).
    """
    keys = all_gather_rows(row_hashes(view.flatten(1)))
    owners = all_gather_rows(sample_idx.to(keys.device))
    sorted_keys, order = torch.sort(keys)
    for inputs, _ in calls[0]:
        if not isinstance(inputs, Tensor) or inputs.shape[1:] != view.shape[1:]:
            continue
        wanted = row_hashes(inputs.flatten(1))
        pos = torch.searchsorted(sorted_keys, wanted).clamp_(max=keys.numel() - 1)
        if not torch.equal(sorted_keys[pos], wanted):
            continue
        rows = encoder.view_embedding(calls, inputs)  # the whole call, in its row order
        if rows is not None:
            return owners[order[pos]].to(rows.device), rows.detach()
    return None
