"""Hierarchical prototypes as module buffers, so checkpoints save and resume them."""
from typing import List, Optional, Sequence

import torch
from mmengine.logging import print_log
from torch import Tensor, nn

from hirl_mm.clustering.result import HierarchicalClusteringResult

# Prototypes saved before the embedding option existed were built on the pooled backbone.
LEGACY_SPACE = 'backbone'


def encode_space(name: str) -> Tensor:
    """An embedding space's name as a uint8 buffer (checkpoints keep only tensors)."""
    return torch.tensor(list(name.encode('ascii')), dtype=torch.uint8)


def decode_space(buffer: Tensor) -> str:
    """The name stored by :func:`encode_space`."""
    return bytes(buffer.tolist()).decode('ascii')


def checkpoint_space(state_dict: dict, prefix: str = 'prototypes.') -> str:
    """The embedding space of the prototypes in a state dict (``'backbone'`` for
    checkpoints written before hirl_mm recorded it)."""
    buffer = state_dict.get(f'{prefix}embedding_space')
    return LEGACY_SPACE if buffer is None else decode_space(buffer)


def check_checkpoint_space(state_dict: dict, prefix: str, embedding: str, dim: int) -> None:
    """Refuse to load prototypes built in another embedding space or of another width.

    Raises:
        ValueError: Naming the checkpoint's space and width and what to do.
    """
    space = checkpoint_space(state_dict, prefix)
    centroids = state_dict.get(f'{prefix}centroids_0')
    width = None if centroids is None else int(centroids.shape[1])
    if f'{prefix}embedding_space' not in state_dict:
        raise ValueError(
            f'The checkpoint was written by hirl_mm before its embedding options and the '
            f'reference MLP layout of the semantic heads (num_mlp_layer now counts Linear '
            f'layers): its {width}-d prototypes were built on the pooled backbone and its '
            f'heads have another structure, so training cannot continue from it. Start a '
            f'new run; knn.py, cluster_eval.py and hirl_report.py still evaluate it (its '
            f'learned levels in the backbone space they were built in).')
    if space == embedding and width in (None, dim):
        return
    raise ValueError(
        f'The checkpoint\'s HIRL prototypes were built in the {space!r} embedding space '
        f'({width}-d); this model clusters the {embedding!r} space ({dim}-d), so its '
        f'semantic heads and prototypes cannot continue from them. Resume with the model '
        f'setting embedding={space!r} (and that checkpoint\'s semantic head), or start a new '
        f'run. Evaluation tools (knn.py, cluster_eval.py, hirl_report.py) still read such '
        f'checkpoints and score the learned levels in their own space.')


class HierarchicalPrototypes(nn.Module):
    """The state of the latest hierarchical clustering, kept in buffers.

    Per level ``l``: ``centroids_l`` ``[K_l, D]`` (L2-normalised), ``im2cluster_l`` ``[N]``
    (the level-``l`` cluster of every training sample, by ``sample_idx``), and for all but
    the top level ``parents_l`` ``[K_l]`` (the level-``l+1`` cluster of each centroid).
    ``num_updates`` counts clustering rounds; zero means "not clustered yet" (warm-up).
    ``N`` is unknown when the model is built: ``im2cluster_l`` starts empty and is resized
    by :meth:`update` and when a checkpoint is loaded. ``embedding_space`` holds the name of
    the embedding the centroids live in (``'neck'`` or ``'backbone'``, as bytes), so that
    evaluation scores the levels in that space and a resume into another space is refused.
    ``data_fingerprint`` holds a digest of the data list the assignments were built on
    (:func:`hirl_mm.datasets.fingerprint.dataset_fingerprint`; empty when unknown), so
    that prototypes are never used on another data set (:meth:`data_mismatch`).

    Args:
        num_clusters (Sequence[int]): ``K_l`` per level, finest first.
        dim (int): Embedding dimension ``D``.
        embedding (str): Name of the embedding space. Defaults to ``'neck'``.
    """

    def __init__(self, num_clusters: Sequence[int], dim: int, embedding: str = 'neck') -> None:
        super().__init__()
        if len(num_clusters) == 0:
            raise ValueError('num_clusters is empty: give at least one level, e.g. '
                             'num_clusters=[30000, 10000, 1000].')
        self.num_clusters = [int(k) for k in num_clusters]
        self.dim = int(dim)
        for level, k in enumerate(self.num_clusters):
            self.register_buffer(f'centroids_{level}', torch.zeros(k, self.dim))
            self.register_buffer(f'im2cluster_{level}', torch.zeros(0, dtype=torch.long))
            if level + 1 < self.num_levels:
                self.register_buffer(f'parents_{level}', torch.zeros(k, dtype=torch.long))
        self.register_buffer('num_updates', torch.zeros((), dtype=torch.long))
        self.register_buffer('embedding_space', encode_space(embedding))
        self.register_buffer('data_fingerprint', torch.zeros(0, dtype=torch.uint8))

    @property
    def embedding(self) -> str:
        """Name of the embedding space the prototypes were built in."""
        return decode_space(self.embedding_space)

    @property
    def num_levels(self) -> int:
        """Number of levels ``L``."""
        return len(self.num_clusters)

    @property
    def ready(self) -> bool:
        """Whether a clustering round has filled the buffers."""
        return bool(self.num_updates > 0)

    @property
    def num_samples(self) -> int:
        """``N``, the number of clustered samples (0 before the first round)."""
        return self.im2cluster_0.shape[0]

    @property
    def centroids(self) -> List[Tensor]:
        """``[K_l, D]`` per level."""
        return [getattr(self, f'centroids_{level}') for level in range(self.num_levels)]

    @property
    def parents(self) -> List[Tensor]:
        """``[K_l]`` per level but the top one."""
        return [getattr(self, f'parents_{level}') for level in range(self.num_levels - 1)]

    @property
    def im2cluster(self) -> List[Tensor]:
        """``[N]`` per level."""
        return [getattr(self, f'im2cluster_{level}') for level in range(self.num_levels)]

    def as_result(self) -> HierarchicalClusteringResult:
        """The stored clustering as a :class:`HierarchicalClusteringResult` (no copies)."""
        return HierarchicalClusteringResult(centroids=self.centroids, parents=self.parents,
                                            im2cluster=self.im2cluster)

    @torch.no_grad()
    def update(self, centroids: Sequence[Tensor], parents: Sequence[Tensor],
               im2cluster: Sequence[Tensor]) -> None:
        """Store a new clustering (e.g. a ``HierarchicalClusteringResult``'s fields).

        Args:
            centroids (Sequence[Tensor]): ``[K_l, D]`` per level.
            parents (Sequence[Tensor]): ``[K_l]`` per level but the top one.
            im2cluster (Sequence[Tensor]): ``[N]`` per level.
        """
        if len(centroids) != self.num_levels or len(im2cluster) != self.num_levels \
                or len(parents) != self.num_levels - 1:
            raise ValueError(
                f'A clustering with {len(centroids)} levels does not fit prototypes of '
                f'{self.num_levels} levels ({self.num_clusters}).')
        for level, (cent, assign) in enumerate(zip(centroids, im2cluster)):
            own = getattr(self, f'centroids_{level}')
            if tuple(cent.shape) != tuple(own.shape):
                raise ValueError(f'Level {level}: centroids of shape {tuple(cent.shape)} '
                                 f'do not fit {tuple(own.shape)}.')
            own.copy_(cent)
            self._buffers[f'im2cluster_{level}'] = assign.to(own.device, torch.long).clone()
        for level, par in enumerate(parents):
            getattr(self, f'parents_{level}').copy_(par)
        self.num_updates += 1

    @torch.no_grad()
    def record_data(self, fingerprint: bytes) -> None:
        """Record the fingerprint of the data set the current assignments belong to.

        Args:
            fingerprint (bytes): The data set's digest (``dataset_fingerprint``).
        """
        self._buffers['data_fingerprint'] = torch.tensor(
            list(fingerprint), dtype=torch.uint8, device=self.num_updates.device)

    @property
    def recorded_fingerprint(self) -> Optional[bytes]:
        """The recorded data fingerprint, None when none was recorded."""
        return bytes(self.data_fingerprint.tolist()) or None

    def data_mismatch(self, num_samples: int, fingerprint: bytes) -> Optional[str]:
        """How a data set differs from the one the prototypes were built on.

        Args:
            num_samples (int): The data set's size.
            fingerprint (bytes): Its digest (``dataset_fingerprint``).

        Returns:
            str | None: What changed, in words; None when the prototypes are not built
            yet or were built on this data set.
        """
        if not self.ready:
            return None
        if num_samples != self.num_samples:
            return (f'the training set has {num_samples} samples, the prototypes were '
                    f'built on {self.num_samples}')
        recorded = self.recorded_fingerprint
        if recorded is None:
            return (f'the prototypes record no fingerprint of their data (a checkpoint '
                    f'written before hirl_mm recorded one), only its size '
                    f'({self.num_samples}), so they cannot be shown to fit this data set')
        if recorded != fingerprint:
            return (f'the training set has the same size ({num_samples}) but another '
                    f'sample list (paths, labels or order; fingerprint {fingerprint.hex()} '
                    f'instead of {recorded.hex()})')
        return None

    def paths(self, sample_idx: Tensor) -> Tensor:
        """The semantic paths of samples.

        Args:
            sample_idx (Tensor): ``[B]`` dataset indices.

        Returns:
            Tensor: ``[B, L]`` cluster index per level.
        """
        if not self.ready:
            raise RuntimeError('No clustering yet: the prototypes are filled by '
                               'HierarchicalClusteringHook after its warm-up epochs.')
        if sample_idx.numel() and int(sample_idx.max()) >= self.num_samples:
            raise IndexError(
                f'sample_idx {int(sample_idx.max())} is outside the {self.num_samples} '
                f'clustered samples; was the training set changed after clustering?')
        idx = sample_idx.to(self.im2cluster_0.device)
        return torch.stack([assign[idx] for assign in self.im2cluster], dim=1)

    @torch.no_grad()
    def reassign(self, sample_idx: Tensor, features: Tensor) -> Tensor:
        """Move samples to their nearest level-0 centroid and lift through the parents.

        Args:
            sample_idx (Tensor): ``[B]`` dataset indices (unique).
            features (Tensor): ``[B, D]`` L2-normalised embeddings.

        Returns:
            Tensor: ``[B]`` bool, whether the sample's level-0 cluster changed.
        """
        idx = sample_idx.to(self.im2cluster_0.device)
        nearest = (features.to(self.centroids_0) @ self.centroids_0.t()).argmax(dim=1)
        changed = nearest != self.im2cluster_0[idx]
        assign = nearest
        for level in range(self.num_levels):
            getattr(self, f'im2cluster_{level}')[idx] = assign
            if level + 1 < self.num_levels:
                assign = getattr(self, f'parents_{level}')[assign]
        return changed

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        if f'{prefix}num_updates' in state_dict:  # a HIRL checkpoint (not plain weights)
            check_checkpoint_space(state_dict, prefix, self.embedding, self.dim)
            key = f'{prefix}data_fingerprint'
            if key not in state_dict:
                if int(state_dict[f'{prefix}num_updates']) > 0:
                    print_log('HIRL: the checkpoint\'s prototypes record no fingerprint of '
                              'the data they were built on (written before hirl_mm '
                              'recorded one); HierarchicalClusteringHook re-clusters '
                              'before using them.', logger='current')
                state_dict[key] = self.data_fingerprint.new_zeros(0)
            self._buffers['data_fingerprint'] = self.data_fingerprint.new_zeros(
                state_dict[key].shape)
        # im2cluster's length is the data set's size, only known once clustered: take the
        # checkpoint's so a resumed run continues with the same assignments.
        for level in range(self.num_levels):
            key = f'{prefix}im2cluster_{level}'
            if key in state_dict:
                own = getattr(self, f'im2cluster_{level}')
                self._buffers[f'im2cluster_{level}'] = own.new_zeros(state_dict[key].shape)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f'num_clusters={self.num_clusters}, dim={self.dim}, '
                f'embedding={self.embedding!r}, '
                f'num_samples={self.num_samples}, num_updates={int(self.num_updates)}')
