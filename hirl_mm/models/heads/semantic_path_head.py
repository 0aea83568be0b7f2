"""Semantic path head of HIRL: per-level projection MLPs and the path discrimination loss."""
from typing import Dict, List, Optional, Sequence, Union

import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from hirl_mm.registry import MODELS
from ..utils.reference_mlp import reference_mlp
from ..utils.semantic_paths import sample_negative_paths

__all__ = ['SemanticPathHead']


@MODELS.register_module()
class SemanticPathHead(BaseModule):
    """Projects an image embedding to one semantic embedding per hierarchy level.

    For each level ``l`` a projection MLP ``g_l`` maps the embedding to ``z_l``, which is
    L2-normalised. As in the reference (``MLP(D, [D] * num_mlp_layer)``), ``num_mlp_layer``
    counts the ``Linear`` layers, all of width ``D = in_channels`` (the centroids' width);
    each but the last is followed by ``BatchNorm1d -> ReLU`` and has no bias (the BN has
    one): ``num_mlp_layer=2`` is ``Linear(D, D, bias=False) - BN - ReLU - Linear(D, D)``.
    The loss discriminates each image's semantic path from randomly drawn
    negative paths (see :func:`hirl_mm.models.losses.semantic_path_loss`).

    Args:
        in_channels (int): Dimension ``D`` of the input embedding and of the centroids.
        num_levels (int): Number of hierarchy levels ``L``.
        num_neg_path (int): Negative paths drawn per image. Defaults to 1000.
        num_mlp_layer (int): ``Linear`` layers of each projection MLP (>= 1). Defaults
            to 2.
        loss (dict): Config of the loss module. Defaults to
            ``dict(type='SemanticPathLoss')``.
        init_cfg (dict | list[dict], optional): Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: int,
                 num_levels: int,
                 num_neg_path: int = 1000,
                 num_mlp_layer: int = 2,
                 loss: dict = dict(type='SemanticPathLoss'),
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_levels < 1:
            # HIRL derives num_levels from its num_clusters: name the setting users write.
            raise ValueError(f'SemanticPathHead needs num_levels >= 1, got {num_levels}: in '
                             f'a HIRL model it is len(model.num_clusters), so '
                             f'model.num_clusters is empty. Give one cluster count per '
                             f'level, finest first, e.g. num_clusters=[30000, 10000, 1000].')
        if in_channels < 1:
            raise ValueError(f'SemanticPathHead needs in_channels >= 1 (the embedding '
                             f'width), got {in_channels}.')
        if num_neg_path < 0 or num_mlp_layer < 1:
            raise ValueError(f'Need num_neg_path >= 0 and num_mlp_layer >= 1 (it counts the '
                             f'Linear layers of each MLP), got {num_neg_path} and '
                             f'{num_mlp_layer}')
        self.in_channels = in_channels
        self.num_levels = num_levels
        self.num_neg_path = num_neg_path
        self.num_mlp_layer = num_mlp_layer
        self.projectors = nn.ModuleList(
            reference_mlp(in_channels, num_mlp_layer) for _ in range(num_levels))
        self.loss_module = MODELS.build(loss)

    def forward(self, embedding: Tensor) -> List[Tensor]:
        """Compute the L2-normalised semantic embedding of every level.

        Args:
            embedding (Tensor): ``[N, in_channels]`` image embeddings.

        Returns:
            List[Tensor]: ``num_levels`` tensors ``[N, in_channels]`` of unit norm.
        """
        if embedding.dim() != 2 or embedding.shape[1] != self.in_channels:
            raise ValueError(
                f'The semantic head expects [N, {self.in_channels}] embeddings but got shape '
                f'{tuple(embedding.shape)}: set semantic_head.in_channels='
                f'{embedding.shape[-1]} (or leave it out: HIRL derives it from the '
                f'embedding).')
        return [F.normalize(g(embedding), dim=1) for g in self.projectors]

    def loss(self,
             embedding: Tensor,
             pos_paths: Optional[Tensor] = None,
             centroids: Optional[Sequence[Tensor]] = None,
             parents: Optional[Sequence[Tensor]] = None) -> Dict[str, Tensor]:
        """Compute the semantic path loss of a batch.

        Before the first clustering (``centroids is None``) the MLPs still run and a zero
        loss connected to every parameter of the head is returned, so that
        DistributedDataParallel sees all parameters used in every iteration.

        Args:
            embedding (Tensor): ``[N, in_channels]`` image embeddings (first view).
            pos_paths (Tensor, optional): ``[N, L]`` semantic path of each image.
                Required when ``centroids`` is given.
            centroids (Sequence[Tensor], optional): ``L`` L2-normalised centroid tensors
                ``[K_l, in_channels]``; None during the clustering warm-up.
            parents (Sequence[Tensor], optional): ``L - 1`` parent tensors;
                ``parents[l][k]`` is the level-(l+1) cluster of level-l cluster ``k``.
                Required when ``centroids`` is given (may be empty for ``L == 1``).

        Returns:
            Dict[str, Tensor]: ``{'loss_semantic': scalar}``.
        """
        z = self(embedding)
        if centroids is None:
            # Zero, but with a graph through every projection parameter (DDP-friendly).
            return dict(loss_semantic=sum(level.sum() for level in z) * 0.)
        if pos_paths is None or parents is None:
            raise ValueError('pos_paths and parents are required when centroids are given')
        if len(centroids) != self.num_levels:
            raise ValueError(f'got {len(centroids)} levels of centroids, the head has '
                             f'{self.num_levels}')
        if len(parents) != self.num_levels - 1:
            raise ValueError(f'got {len(parents)} parent tensors, expected '
                             f'{self.num_levels - 1}')
        # Global generator of the data's device: randomness follows the global seed.
        neg_paths = sample_negative_paths(
            embedding.shape[0], self.num_neg_path, centroids[0].shape[0], parents,
            device=embedding.device)
        pos_paths = pos_paths.to(embedding.device)
        loss = self.loss_module(z, centroids, pos_paths, neg_paths)
        return dict(loss_semantic=loss)
