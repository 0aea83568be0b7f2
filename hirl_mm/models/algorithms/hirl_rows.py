"""The rows HIRL reads off a training step's recorded encoder calls, besides its embedding.

Two readers: the training-fed feature bank (:func:`bank_rows`, the clustering encoder's
rows of each sample) and iter-wise re-assignment (:func:`key_view_embedding`, the key
view's embedding). :func:`momentum_calls_read` says whether either reads the momentum /
teacher encoder in a step, i.e. whether its calls need recording at all.
"""
from typing import List, Optional, Tuple

import torch
from mmengine import dist
from mmpretrain.structures import DataSample
from torch import Tensor

from ..utils.embedding_encoder import EmbeddingEncoder
from ..utils.shuffled_rows import shuffled_view_rows

__all__ = ['momentum_calls_read', 'bank_rows', 'key_view_embedding', 'sample_indices']


def momentum_calls_read(model) -> bool:
    """Whether this step of a HIRL model reads its momentum / teacher encoder's calls.

    Only iter-wise re-assignment (once the prototypes exist) and the feature bank (when
    it records the momentum encoder's rows) do; recording the calls otherwise would keep
    their outputs (e.g. HIRL-iBOT's teacher patch scores) alive until ``loss`` returns.
    """
    if not model.training:
        return False
    iter_wise = model.iter_wise_assignment and model.prototypes.ready
    bank = model.bank_recording and model.feature_source != 'online'
    return bool(iter_wise or bank)


def bank_rows(views: List[Tensor], sample_idx: Tensor, online_embedding: Tensor,
              momentum: Optional[EmbeddingEncoder], momentum_calls: Optional[list],
              feature_source: str) -> Tuple[Tensor, Tensor]:
    """This step's ``(sample_idx, rows)`` for the training-fed feature bank, detached.

    The clustering encoder's output as the algorithm computed it: the momentum /
    teacher encoder's embedding of the first view it saw whole (MoCo's key view, BYOL's
    first view), else the online embedding of the first view. When the momentum
    encoder ran on keys shuffled across the ranks (MoCo's ``batch_shuffle_ddp``), each
    rank keeps the rows it computed, whichever rank's samples they are.
    """
    if momentum is None or feature_source == 'online':
        return sample_idx, online_embedding.detach()
    local = next((rows for rows in (momentum.view_embedding(momentum_calls, view)
                                    for view in views[:2]) if rows is not None), None)
    if dist.get_world_size() > 1 and len(views) > 1:
        # Decided together: the shuffled lookup is collective.
        everywhere = torch.tensor(int(local is not None), device=sample_idx.device)
        dist.all_reduce(everywhere, op='min')
        if not int(everywhere):
            found = shuffled_view_rows(momentum, momentum_calls, views[1], sample_idx)
            return found or (sample_idx, online_embedding.detach())
    if local is not None:
        return sample_idx, local.detach()
    return sample_idx, online_embedding.detach()


def key_view_embedding(views: List[Tensor], encoders: List[EmbeddingEncoder],
                       calls: List[list]) -> Optional[Tensor]:
    """Embedding of the key (second) view for iter-wise re-assignment.

    The momentum encoder's output is preferred (it is what was clustered), then the
    online encoder's. ``None`` when neither saw the key view as a whole (e.g. MoCo
    shuffles keys across ranks): the caller then uses the first view.
    """
    if len(views) < 2:
        return None
    for encoder, encoder_calls in reversed(list(zip(encoders, calls))):
        embedding = encoder.view_embedding(encoder_calls, views[1])
        if embedding is not None:
            return embedding
    return None


def sample_indices(data_samples: List[DataSample], device: torch.device) -> Tensor:
    """The dataset indices of a batch, from the data samples' metainfo."""
    try:
        idx = [int(sample.sample_idx) for sample in data_samples]
    except (AttributeError, TypeError) as error:
        raise KeyError(
            'HIRL needs `sample_idx` in every data sample to look up its semantic path. '
            'Keep "sample_idx" in the meta_keys of PackInputs (it is there by default) '
            'and use a dataset derived from mmengine BaseDataset.') from error
    return torch.tensor(idx, dtype=torch.long, device=device)
