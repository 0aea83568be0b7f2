"""HIRL on top of any registered mmpretrain self-supervised algorithm."""
from typing import Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from hirl_mm.registry import MODELS
from hirl_mm.utils.dist_utils import all_gather_rows
from ..utils.backbone_capture import record_calls_of
from ..utils.embedding_encoder import (EMBEDDINGS, EmbeddingEncoder, final_token_norm,
                                       infer_output_width)
from ..utils.hierarchical_prototypes import HierarchicalPrototypes
from ..utils.teacher_ema import BUFFER_SOURCES, averaged_child, configure_ema
from .hirl_rows import bank_rows, key_view_embedding, momentum_calls_read, sample_indices

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
            ``num_levels`` is filled in from ``num_clusters`` and its ``in_channels``, when
            left out, from the embedding's width (checked against it when given).
        embedding (str): What the semantic heads train on and the prototypes cluster:
            ``'neck'`` (the reference: the output of the algorithm's own neck, i.e. its
            projection head, e.g. 128-d for MoCo v2; gradients of the semantic loss reach
            the neck) or ``'backbone'`` (the pooled backbone output, e.g. 2048-d for a
            ResNet-50; on a ViT the final-norm [CLS] token) or, on ViTs, ``'patch_mean'``
            (the mean of the final-norm patch tokens). Defaults to ``'neck'``.
        feature_source (str): Encoder whose embeddings are clustered: ``'momentum'`` (the
            algorithm's EMA / teacher encoder; error if it has none), ``'online'``, or
            ``'auto'`` (momentum when there is one, as the reference did).
        iter_wise_assignment (bool): Re-assign each batch's samples to their nearest
            level-0 centroid with the embedding of the second (key) view, synchronised
            across ranks. Defaults to False.
        momentum_buffers (str): Buffers (BN running statistics) of the algorithm's
            momentum encoder / teacher (an mmengine ``BaseAveragedModel``: MoCo v3's
            ``momentum_encoder``, BYOL's ``target_net``, MoCo's ``encoder_k``, DINO's
            ``teacher``). ``'online'``: mmengine's EMA copies the online encoder's buffers
            at every update, so an eval-mode extraction uses the online statistics.
            ``'own'`` (the HIRL code's key encoder): copied at the first update only, then
            updated by the momentum encoder's own train-mode forwards. Defaults to
            ``'online'``; ``'own'`` is refused for an algorithm without one.
        *args, **kwargs: The wrapped algorithm's own arguments.
    """

    def __init__(self, *args, num_clusters: Sequence[int], semantic_head: dict,
                 embedding: str = 'neck', feature_source: str = 'auto',
                 iter_wise_assignment: bool = False, momentum_buffers: str = 'online',
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._check_no_name_clash()
        for name, value, choices in (('feature_source', feature_source, FEATURE_SOURCES),
                                     ('momentum_buffers', momentum_buffers, BUFFER_SOURCES)):
            if value not in choices:
                raise ValueError(f'{name}={value!r} is not one of {choices}.')
        if momentum_buffers == 'own':
            averaged = averaged_child(self)
            if averaged is None:
                raise ValueError(
                    f'momentum_buffers="own" keeps the momentum encoder\'s own buffers, but '
                    f'{type(self).__name__} has no momentum encoder / teacher (no mmengine '
                    f'BaseAveragedModel); leave momentum_buffers="online".')
            configure_ema(averaged, buffer_source='own')
        self.momentum_buffers = momentum_buffers
        if embedding not in EMBEDDINGS:
            raise ValueError(f'embedding={embedding!r} is not one of {EMBEDDINGS}.')
        if embedding == 'neck' and getattr(self, 'neck', None) is None:
            raise ValueError(f'embedding="neck" but {type(self).__name__} has no neck; use '
                             f'embedding="backbone".')
        self.embedding = embedding
        self.feature_source = feature_source
        self.iter_wise_assignment = iter_wise_assignment
        # Set by HierarchicalClusteringHook(feature_bank=True) in the epochs whose training
        # forward fills its bank; ``loss`` then leaves (sample_idx, rows) for the hook.
        self.bank_recording = False
        self._bank_rows: Optional[Tuple[Tensor, Tensor]] = None
        self._neck_input_layout: Optional[str] = None  # learned from the first neck call
        self.clustering_encoder()  # fail at build time if feature_source cannot be met
        head_cfg = dict(semantic_head)
        if head_cfg.get('num_levels', len(num_clusters)) != len(num_clusters):
            raise ValueError(f'semantic_head.num_levels={head_cfg["num_levels"]} differs '
                             f'from len(num_clusters)={len(num_clusters)}; drop num_levels '
                             f'from the head config, it is derived from num_clusters.')
        head_cfg['num_levels'] = len(num_clusters)
        head_cfg['in_channels'] = self._embedding_width(head_cfg.get('in_channels'))
        self.semantic_head = MODELS.build(head_cfg)
        self.prototypes = HierarchicalPrototypes(num_clusters, head_cfg['in_channels'],
                                                 embedding=embedding)
        # The hook keeps prototypes identical on every rank itself; DDP must not broadcast
        # them each step (im2cluster is data-set sized and is resized when clustered).
        self._ddp_params_and_buffers_to_ignore = [
            f'prototypes.{name}' for name, _ in self.prototypes.named_buffers()]

    def _check_no_name_clash(self) -> None:
        """Stop if the wrapped algorithm has a module named like one of HIRL's methods.

        Such a module would be shadowed by the method (e.g. MoCo v3's
        ``momentum_encoder`` once was), and the algorithm's own ``loss`` would break.
        """
        own = {name for name in vars(HIRLMixin) if not name.startswith('__')}
        clashes = sorted(own & (set(self._modules) | set(self._parameters) |
                                set(self._buffers)))
        if clashes:
            raise TypeError(f'{type(self).__name__}: the wrapped algorithm has members named '
                            f'like HIRLMixin\'s methods ({clashes}); rename them in HIRLMixin.')

    def _embedding_width(self, in_channels: Optional[int]) -> int:
        """The semantic head's width: derived from the embedding, or checked against it."""
        module = self.neck if self.embedding == 'neck' else self.backbone
        if self.embedding == 'patch_mean':
            module = final_token_norm(self.backbone)  # fails here for a non-ViT backbone
        width = infer_output_width(module)
        if in_channels is None:
            if width is None:
                raise ValueError(
                    f'Cannot read the width of the {self.embedding!r} embedding off '
                    f'{type(module).__name__}; set semantic_head.in_channels.')
            return width
        if width is not None and int(in_channels) != width:
            raise ValueError(
                f'semantic_head.in_channels={in_channels}, but the {self.embedding!r} '
                f'embedding of {type(self).__name__} ({type(module).__name__}) is '
                f'{width}-d: set in_channels={width}, or leave it out (it is derived).')
        return int(in_channels)

    def _encoder(self, backbone: nn.Module, neck: Optional[nn.Module],
                 layout: Optional[str] = None) -> EmbeddingEncoder:
        """An :class:`EmbeddingEncoder` for this model's embedding option."""
        if self.embedding == 'backbone':
            return EmbeddingEncoder(backbone)
        if self.embedding == 'patch_mean':
            return EmbeddingEncoder(backbone, token_norm=final_token_norm(backbone))
        if neck is None:
            raise ValueError(f'embedding="neck" but the encoder of {type(self).__name__} '
                             f'has no neck; use embedding="backbone".')
        return EmbeddingEncoder(backbone, neck, layout or self._neck_input_layout)

    def semantic_online_encoder(self) -> EmbeddingEncoder:
        """The online backbone (+ neck): what the semantic heads train on."""
        return self._encoder(self.backbone, getattr(self, 'neck', None))

    def semantic_momentum_encoder(self) -> Optional[EmbeddingEncoder]:
        """The EMA / teacher encoder's backbone (+ neck), if the algorithm has one."""
        averaged = averaged_child(self)
        if averaged is None:
            return None
        inner = averaged.module
        if isinstance(inner, nn.Sequential):
            # Built as Sequential(backbone, neck) (MoCo, BYOL): neck(backbone(x)).
            neck = inner[1] if len(inner) > 1 else None
            return self._encoder(inner[0], neck, layout='output')
        return self._encoder(getattr(inner, 'backbone', inner), getattr(inner, 'neck', None))

    def clustering_encoder(self) -> EmbeddingEncoder:
        """The encoder whose embeddings are clustered (see ``feature_source``)."""
        momentum = self.semantic_momentum_encoder()
        if self.feature_source == 'momentum' and momentum is None:
            raise ValueError(f'feature_source="momentum" but {type(self).__name__} has no '
                             f'momentum encoder; use feature_source="auto" or "online".')
        if self.feature_source == 'online' or momentum is None:
            return self.semantic_online_encoder()
        return momentum

    @torch.no_grad()
    def extract_clustering_embedding(self, inputs: Tensor) -> Tensor:
        """Un-normalised embeddings of a batch for clustering (eval-transform images)."""
        encoder = self.clustering_encoder()
        embedding = encoder.embed(inputs)
        self._remember_layout(encoder)
        return embedding

    def _remember_layout(self, encoder: EmbeddingEncoder) -> None:
        if encoder.neck is getattr(self, 'neck', None) and encoder.neck_input_layout:
            self._neck_input_layout = encoder.neck_input_layout

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
        online, momentum = self.semantic_online_encoder(), self.semantic_momentum_encoder()
        if momentum is not None and not momentum_calls_read(self):
            momentum = None  # nothing reads its calls this step: do not record (keep) them
        encoders = [online] + ([momentum] if momentum is not None else [])
        with record_calls_of([m for e in encoders for m in e.modules]) as recorded:
            losses = super().loss(inputs, data_samples, **kwargs)
        calls, start = [], 0
        for encoder in encoders:
            calls.append(recorded[start:start + len(encoder.modules)])
            start += len(encoder.modules)
        views = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        embedding = online.find_view_embedding(calls[0], views[0])
        self._remember_layout(online)
        sample_idx = sample_indices(data_samples, embedding.device)
        if self.bank_recording and self.training:
            self._bank_rows = bank_rows(views, sample_idx, embedding, momentum,
                                        calls[1] if momentum is not None else None,
                                        self.feature_source)
        if not self.prototypes.ready:
            # Warm-up: a zero loss still touching every head parameter keeps DDP happy.
            losses.update(self.semantic_head.loss(embedding))
            return losses

        if self.iter_wise_assignment and self.training:
            key_embedding = key_view_embedding(views, encoders, calls)
            losses['assign_changed_ratio'] = self._reassign(
                sample_idx, (embedding if key_embedding is None else key_embedding).detach())
        losses.update(
            self.semantic_head.loss(embedding, self.prototypes.paths(sample_idx),
                                    self.prototypes.centroids, self.prototypes.parents))
        return losses

    def pop_bank_rows(self) -> Optional[Tuple[Tensor, Tensor]]:
        """``(sample_idx, rows)`` the last training step left for the feature bank (once).
        """
        rows, self._bank_rows = self._bank_rows, None
        return rows

    @torch.no_grad()
    def _reassign(self, sample_idx: Tensor, key_embedding: Tensor) -> Tensor:
        """Iter-wise re-assignment of the batches of all ranks; returns the changed ratio."""
        features = nn.functional.normalize(key_embedding.float(), dim=1)
        all_idx = all_gather_rows(sample_idx)
        all_features = all_gather_rows(features)
        changed = self.prototypes.reassign(all_idx, all_features)
        return changed.float().mean()


_HIRL_CLASSES: Dict[type, type] = {}


class UnknownAlgorithmError(KeyError):
    """``algorithm`` names no registered model. Printed as written: a plain ``KeyError``
    shows its message as a repr, quotes escaped."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ''


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
            raise UnknownAlgorithmError(
                f'algorithm={algorithm!r} is not a registered model; use the name of an '
                f'mmpretrain self-supervised algorithm, e.g. "SimCLR", "MoCo", "SimSiam", '
                f'"SwAV", "BYOL".')
    else:
        algorithm_cls = algorithm
    return hirl_class(algorithm_cls)(**kwargs)
