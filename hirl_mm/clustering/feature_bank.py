"""A per-rank bank of clustering embeddings, filled by the training forward.

DeepCluster-v2 and solo-learn cluster the embeddings each rank computed during the previous
epoch's training steps instead of embedding the whole data set again. :class:`FeatureBank`
holds those rows for HIRL: every training step writes the rows of the samples this rank
trained on (at their ``sample_idx``), and the next clustering round reads them. Nothing is
gathered: each rank keeps only its own rows, which is what the sharded k-means takes.

A shuffled, padded sampler can give one sample to two ranks (``DefaultSampler`` with
``round_up=True``) and ``drop_last=True`` leaves a few samples out of an epoch.
:meth:`FeatureBank.shard` settles both with one ``[N]`` int32 all-reduce: the lowest rank
that saw a sample owns its row, and the samples nobody saw are returned so the caller can
embed them (a handful per epoch).
"""
from typing import NamedTuple, Optional

import torch
from mmengine import dist
from torch import Tensor, nn


class BankShard(NamedTuple):
    """This rank's part of the bank after an epoch (see :meth:`FeatureBank.shard`).

    Attributes:
        features (Tensor): ``[n_rank, D]`` rows this rank owns, in the bank's dtype.
        sample_idx (Tensor): ``[n_rank]`` int64 their indices in ``0..N-1`` (distinct over
            all ranks).
        missing (Tensor): ``[m]`` int64 indices no rank trained on in the epoch, identical
            on every rank, sorted.
    """
    features: Tensor
    sample_idx: Tensor
    missing: Tensor


class FeatureBank:
    """Rows written by the training forward, one per sample this rank saw in an epoch.

    Rows are L2-normalised in float32 and stored in ``dtype`` in a buffer allocated at the
    first write for ``capacity`` rows (this rank's steps per epoch times the batch size),
    on the rows' device. A sample written twice keeps its last row.

    Args:
        capacity (int): Most rows one epoch writes on this rank.
        dtype (torch.dtype): Dtype the rows are kept in. Defaults to float32.
    """

    def __init__(self, capacity: int, dtype: torch.dtype = torch.float32) -> None:
        if capacity < 1:
            raise ValueError(f'FeatureBank needs capacity >= 1, got {capacity}.')
        self.capacity = int(capacity)
        self.dtype = dtype
        self._rows: Optional[Tensor] = None
        self._idx: Optional[Tensor] = None
        self._size = 0
        self.epoch: Optional[int] = None  # the epoch whose steps filled it

    def __len__(self) -> int:
        return self._size

    def reset(self, epoch: int) -> None:
        """Start filling for ``epoch`` (the buffer is kept, its rows are forgotten)."""
        self._size = 0
        self.epoch = epoch

    @torch.no_grad()
    def add(self, sample_idx: Tensor, rows: Tensor) -> None:
        """Write one step's rows.

        Args:
            sample_idx (Tensor): ``[B]`` int64 indices of the batch's samples.
            rows (Tensor): ``[B, D]`` their un-normalised embeddings (detached here).

        Raises:
            RuntimeError: When the epoch writes more rows than ``capacity``.
        """
        batch = rows.shape[0]
        if sample_idx.numel() != batch:
            raise ValueError(f'{sample_idx.numel()} sample indices for {batch} rows.')
        if self._rows is None:
            self._rows = rows.new_empty((self.capacity, rows.shape[1]), dtype=self.dtype)
            self._idx = torch.empty(self.capacity, dtype=torch.long, device=rows.device)
        if self._size + batch > self.capacity:
            raise RuntimeError(
                f'The feature bank holds {self.capacity} rows per rank and epoch (steps per '
                f'epoch x batch size), but this epoch wrote more; the training loader '
                f'yields more samples than it said.')
        end = self._size + batch
        self._rows[self._size:end] = nn.functional.normalize(
            rows.detach().float(), dim=1).to(self.dtype)
        self._idx[self._size:end] = sample_idx.to(self._idx.device)
        self._size = end

    def shard(self, num_samples: int) -> BankShard:
        """The rows this rank owns and the samples no rank saw, for ``N = num_samples``.

        Collective: every rank must call it. One ``[N]`` int32 all-reduce (min) decides
        ownership: the lowest rank that saw a sample keeps it, so each sample is held by
        exactly one rank.

        Args:
            num_samples (int): ``N``, the training set's size.

        Returns:
            BankShard: Owned rows, their indices and the missing indices.
        """
        rank, world = dist.get_rank(), dist.get_world_size()
        device = self._idx.device if self._idx is not None else torch.device('cpu')
        idx = (self._idx[:self._size] if self._idx is not None
               else torch.empty(0, dtype=torch.long))
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= num_samples):
            raise RuntimeError(f'The feature bank holds sample_idx outside 0..{num_samples - 1}'
                               f'; the training and clustering data sets differ.')
        # The last write of a sample on this rank wins: positions of each index's last row.
        positions = torch.arange(idx.numel(), device=device)
        last = torch.full((num_samples, ), -1, dtype=torch.long, device=device)
        last.scatter_reduce_(0, idx, positions, reduce='amax')
        owner = torch.full((num_samples, ), world, dtype=torch.int32, device=device)
        owner[idx] = rank
        dist.all_reduce(owner, op='min')
        keep = last[(owner == rank).nonzero().squeeze(1)]
        keep = keep[keep >= 0]
        missing = (owner == world).nonzero().squeeze(1).to(torch.long)
        rows = self._rows[keep] if self._rows is not None else torch.empty(0, 0)
        return BankShard(rows, idx[keep], missing)
