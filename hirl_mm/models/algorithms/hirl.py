"""HIRL on top of any registered mmpretrain self-supervised algorithm."""
from typing import Dict, List, Optional, Sequence, Type, Union

import torch
from mmengine.model.averaged_model import BaseAveragedModel
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from hirl_mm.registry import MODELS
from hirl_mm.utils.dist_utils import all_gather_rows
from ..utils.backbone_capture import (find_view_output, record_calls_of,
                                      try_find_view_output)
from ..utils.embedding import backbone_embedding
from ..utils.hierarchical_prototypes import HierarchicalPrototypes

FEATURE_SOURCES = ('auto', 'online', 'momentum')


class HIRLMixin:
    """Adds hierarchical prototypes and semantic path discrimination to an SSL algorithm.

    Mixed in front of the wrapped algorithm's class by :func:`HIRL`, so the algorithm's own
    code runs unchanged (``super().loss``) and its modules keep their names: the checkpoint
    holds the backbone under ``backbone.``, as for the plain algorithm.

    Args:
        num_clusters (Sequence[int]): ``K_l`` per level, finest first (e.g. 30000, 10000,
            1000); strictly decreasing.
        semantic_head (dict): Config of the semantic path head (``SemanticPathHead``); its
            ``num_levels`` is filled in from ``num_clusters``.
        feature_source (str): Encoder whose embeddings are clustered: ``'momentum'`` (the
            algorithm's EMA / teacher encoder; error if it has none), ``'online'``, or
            ``'auto'`` (momentum when there is one, as the reference did).
        iter_wise_assignment (bool): Re-assign each batch's samples to their nearest
            level-0 centroid with the embedding of the second (key) view, synchronised
            across ranks. Defaults to False.
        *args, **kwargs: The wrapped algorithm's own arguments.
    """

    def __init__(self, *args, num_clusters: Sequence[int], semantic_head: dict,
                 feature_source: str = 'auto', iter_wise_assignment: bool = False,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if feature_source not in FEATURE_SOURCES:
            raise ValueError(f'feature_source={feature_source!r} is not one of '
                             f'{FEATURE_SOURCES}.')
        head_cfg = dict(semantic_head)
        if head_cfg.get('num_levels', len(num_clusters)) != len(num_clusters):
            raise ValueError(f'semantic_head.num_levels={head_cfg["num_levels"]} differs '
                             f'from len(num_clusters)={len(num_clusters)}; drop num_levels '
                             f'from the head config, it is derived from num_clusters.')
        head_cfg['num_levels'] = len(num_clusters)
        self.semantic_head = MODELS.build(head_cfg)
        self.prototypes = HierarchicalPrototypes(num_clusters, head_cfg['in_channels'])
        self.feature_source = feature_source
        self.iter_wise_assignment = iter_wise_assignment
        self.clustering_backbone()  # fail at build time if feature_source cannot be met
        # The hook keeps prototypes identical on every rank itself; DDP must not broadcast
        # them each step (im2cluster is data-set sized and is resized when clustered).
        self._ddp_params_and_buffers_to_ignore = [
            f'prototypes.{name}' for name, _ in self.prototypes.named_buffers()]

    def momentum_backbone(self) -> Optional[nn.Module]:
        """The backbone of the algorithm's EMA / teacher encoder, if it has one."""
        for module in self.children():
            if isinstance(module, BaseAveragedModel):
                inner = module.module
                if isinstance(inner, nn.Sequential):
                    return inner[0]
                return getattr(inner, 'backbone', inner)
        return None

    def clustering_backbone(self) -> nn.Module:
        """The backbone whose embeddings are clustered (see ``feature_source``)."""
        momentum = self.momentum_backbone()
        if self.feature_source == 'momentum' and momentum is None:
            raise ValueError(f'feature_source="momentum" but {type(self).__name__} has no '
                             f'momentum encoder; use feature_source="auto" or "online".')
        if self.feature_source == 'online' or momentum is None:
            return self.backbone
        return momentum

    @torch.no_grad()
    def extract_clustering_embedding(self, inputs: Tensor) -> Tensor:
        """Un-normalised embeddings of a batch for clustering (eval-transform images)."""
        return backbone_embedding(self.clustering_backbone()(inputs))

    def loss(self, inputs: Union[Tensor, List[Tensor]], data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        """The wrapped algorithm's losses plus ``loss_semantic``.

        Args:
            inputs (Tensor | List[Tensor]): The views, as for the wrapped algorithm.
            data_samples (List[DataSample]): Must carry ``sample_idx`` (mmpretrain's
                ``PackInputs`` keeps it by default).

        Returns:
            Dict[str, Tensor]: The algorithm's losses, ``loss_semantic`` and, with
            iter-wise assignment, ``assign_changed_ratio``.
        """
        momentum = self.momentum_backbone()
        watched = [self.backbone] + ([momentum] if momentum is not None else [])
        with record_calls_of(watched) as (calls, *momentum_calls):
            losses = super().loss(inputs, data_samples, **kwargs)
        views = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        first_view = find_view_output(calls, views[0])
        embedding = backbone_embedding(first_view)
        if not self.prototypes.ready:
            # Warm-up: a zero loss still touching every head parameter keeps DDP happy.
            losses.update(self.semantic_head.loss(embedding))
            return losses

        sample_idx = self._sample_idx(data_samples, embedding.device)
        if self.iter_wise_assignment and self.training:
            key_output = self._key_view_output(views, calls, momentum_calls)
            key_embedding = backbone_embedding(
                first_view if key_output is None else key_output).detach()
            losses['assign_changed_ratio'] = self._reassign(sample_idx, key_embedding)
        losses.update(
            self.semantic_head.loss(embedding, self.prototypes.paths(sample_idx),
                                    self.prototypes.centroids, self.prototypes.parents))
        return losses

    @staticmethod
    def _key_view_output(views: List[Tensor], calls: list,
                         momentum_calls: List[list]) -> Optional[object]:
        """Backbone output of the key (second) view for iter-wise re-assignment.

        The momentum encoder's output is preferred (it is what was clustered), then the
        online backbone's. ``None`` when neither saw the key view as a whole (e.g. MoCo
        shuffles keys across ranks): the caller then uses the first view.
        """
        if len(views) < 2:
            return None
        for recorded in [*momentum_calls, calls]:
            output = try_find_view_output(recorded, views[1])
            if output is not None:
                return output
        return None

    @staticmethod
    def _sample_idx(data_samples: List[DataSample], device: torch.device) -> Tensor:
        """The dataset indices of a batch, from the data samples' metainfo."""
        try:
            idx = [int(sample.sample_idx) for sample in data_samples]
        except (AttributeError, TypeError) as error:
            raise KeyError(
                'HIRL needs `sample_idx` in every data sample to look up its semantic path. '
                'Keep "sample_idx" in the meta_keys of PackInputs (it is there by default) '
                'and use a dataset derived from mmengine BaseDataset.') from error
        return torch.tensor(idx, dtype=torch.long, device=device)

    @torch.no_grad()
    def _reassign(self, sample_idx: Tensor, key_embedding: Tensor) -> Tensor:
        """Iter-wise re-assignment of the batches of all ranks; returns the changed ratio."""
        features = nn.functional.normalize(key_embedding.float(), dim=1)
        all_idx = all_gather_rows(sample_idx)
        all_features = all_gather_rows(features)
        changed = self.prototypes.reassign(all_idx, all_features)
        return changed.float().mean()


_HIRL_CLASSES: Dict[type, type] = {}


def hirl_class(algorithm_cls: Type[BaseSelfSupervisor]) -> type:
    """The HIRL version of an algorithm class (created once, then cached).

    Args:
        algorithm_cls (type): A subclass of mmpretrain's ``BaseSelfSupervisor``.

    Returns:
        type: ``HIRL<Name>``, a subclass of both :class:`HIRLMixin` and the algorithm.
    """
    if issubclass(algorithm_cls, HIRLMixin):
        return algorithm_cls
    if not (isinstance(algorithm_cls, type) and issubclass(algorithm_cls, BaseSelfSupervisor)):
        raise TypeError(f'HIRL wraps mmpretrain self-supervised algorithms (subclasses of '
                        f'BaseSelfSupervisor); got {algorithm_cls!r}.')
    if algorithm_cls not in _HIRL_CLASSES:
        name = f'HIRL{algorithm_cls.__name__}'
        _HIRL_CLASSES[algorithm_cls] = type(name, (HIRLMixin, algorithm_cls), {
            '__module__': __name__,
            '__doc__': f'{algorithm_cls.__name__} with HIRL (see :class:`HIRLMixin`).'})
    return _HIRL_CLASSES[algorithm_cls]


@MODELS.register_module(name='HIRL')
def build_hirl(algorithm: Union[str, type], **kwargs) -> BaseSelfSupervisor:
    """Build a registered self-supervised algorithm with HIRL added.

    Used from configs as ``model = dict(type='HIRL', algorithm='SimCLR', num_clusters=...,
    semantic_head=dict(...), <the algorithm's own arguments>)``; inheriting an mmpretrain
    config, only ``type``, ``algorithm`` and the HIRL arguments need to be written.

    Args:
        algorithm (str | type): The algorithm's registered name (e.g. ``'MoCo'``) or class.
        **kwargs: HIRL's arguments (see :class:`HIRLMixin`) and the algorithm's own.

    Returns:
        BaseSelfSupervisor: An instance of ``HIRL<Algorithm>``.
    """
    if isinstance(algorithm, str):
        algorithm_cls = MODELS.get(algorithm)
        if algorithm_cls is None:
            raise KeyError(f'algorithm={algorithm!r} is not a registered model; use the '
                           f'name of an mmpretrain self-supervised algorithm, e.g. "SimCLR", '
                           f'"MoCo", "SimSiam", "SwAV", "BYOL".')
    else:
        algorithm_cls = algorithm
    return hirl_class(algorithm_cls)(**kwargs)
