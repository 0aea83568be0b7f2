"""DINO: self-distillation with no labels (Caron et al., ICCV 2021, arXiv 2104.14294).

A student (backbone + :class:`~hirl_mm.models.necks.DINONeck`) sees all crops, 2 global
and several local ones; a teacher, the exponential moving average of the student (cosine
momentum 0.996 -> 1, :class:`mmpretrain.models.CosineEMA`), sees the global crops only.
The student matches the teacher's centred, sharpened distribution over prototypes
(:class:`~hirl_mm.models.losses.DINOLoss`) for every pair of different crops.

The schedules of the recipe live outside the model, each resumable from a checkpoint:
the teacher temperature warm-up (``TeacherTempWarmupHook``), the frozen last layer
during the first epoch(s) (``FreezeLastLayerHook``), gradient clipping (the global norm,
mmengine's ``clip_grad``, as the HIRL authors; ``PerParamGradClipHook`` for the original
repositories' per-parameter clip), the weight-decay cosine
(``CosineAnnealingWeightDecayExceptFixed``) and the EMA momentum (the teacher's step
count).

The teacher runs in eval mode: as in the papers, it has no stochastic depth and no
dropout (the reference builds it with ``drop_path_rate=0``); its BatchNorm layers (a BN
head) use batch statistics, as in the reference's train-mode teacher. Its backbone is what the
papers evaluate; ``tools/model_converters/teacher_backbone.py`` writes it as ``backbone.``.

Teacher initialisation (``teacher_neck_init``): DINO's and iBOT's own code starts the
teacher as a copy of the whole student (``'copy'``, the default); the HIRL authors' code
copies only the backbone and gives the teacher head (here the neck) its own random init,
averaged towards the student's head from the first step on (``'independent'``).
"""
import copy
from typing import Dict, List, Optional, Union

import torch
from mmpretrain.models.selfsup import BaseSelfSupervisor
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from hirl_mm.registry import MODELS
from ..utils.multi_crop import group_by_resolution, split_global_local
from ..utils.teacher_ema import TeacherEMA

__all__ = ['DINO', 'TEACHER_NECK_INITS']

TEACHER_NECK_INITS = ('copy', 'independent')


@MODELS.register_module()
class DINO(BaseSelfSupervisor):
    """DINO, in mmpretrain's self-supervised layout.

    Args:
        backbone (dict): Backbone config (e.g. ``MaskedVisionTransformer``, ``[CLS]`` out).
        neck (dict): ``DINONeck`` config (MLP, bottleneck, prototype layer).
        head (dict): ``DINOHead`` config (the loss and its teacher centre).
        base_momentum (float): ``1 - m`` of the teacher EMA at the first step (0.004 for
            m = 0.996); annealed to 0 (m = 1) by a cosine over the training iterations.
        num_global_crops (int): Views that are global crops (first in the batch).
            Defaults to 2.
        teacher_neck_init (str): How the teacher's neck starts. ``'copy'``: the teacher is
            a copy of the whole student (DINO's and iBOT's code; mmengine's first EMA
            update copies again). ``'independent'``: the HIRL authors' code: the teacher's
            backbone is the student's, its neck gets its own random init (drawn after the
            student's, from the same config) and the first EMA update averages it towards
            the student's (``m * own + (1 - m) * student``) instead of copying. Defaults
            to ``'copy'``.
        pretrained (str, optional): Checkpoint to initialise from.
        data_preprocessor (dict, optional): Defaults to ``SelfSupDataPreprocessor``.
        init_cfg (dict | list, optional): Initialisation config.
    """

    def __init__(self, backbone: dict, neck: dict, head: dict, base_momentum: float = 0.004,
                 num_global_crops: int = 2, teacher_neck_init: str = 'copy',
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        if teacher_neck_init not in TEACHER_NECK_INITS:
            raise ValueError(f'teacher_neck_init={teacher_neck_init!r} is not one of '
                             f'{TEACHER_NECK_INITS}: "copy" (the teacher starts as the '
                             f'whole student, DINO / iBOT) or "independent" (backbone copied, '
                             f'neck from its own random init, the HIRL code).')
        if teacher_neck_init == 'independent' and not isinstance(neck, dict):
            raise TypeError('teacher_neck_init="independent" builds the teacher\'s neck '
                            'from the neck config: give neck as a config dict.')
        super().__init__(backbone=backbone, neck=neck, head=head, pretrained=pretrained,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.num_global_crops = num_global_crops
        self.teacher_neck_init = teacher_neck_init
        self._neck_cfg = copy.deepcopy(neck)
        # Updated by gradients never: BaseAveragedModel copies with requires_grad False.
        first_update = 'average' if teacher_neck_init == 'independent' else 'copy'
        self.teacher = TeacherEMA(nn.Sequential(self.backbone, self.neck),
                                  momentum=base_momentum, first_update=first_update)

    def init_weights(self) -> None:
        """Initialise the student, then start the teacher from it (see
        ``teacher_neck_init``)."""
        super().init_weights()
        if self.teacher_neck_init == 'copy':
            self.teacher.module.load_state_dict(
                nn.Sequential(self.backbone, self.neck).state_dict())
            return
        self.teacher.module[0].load_state_dict(self.backbone.state_dict())
        # A head of its own, as the HIRL code builds it: a fresh neck (its constructor's
        # draws, e.g. the last layer, and its init_weights), drawn after the student's.
        own_neck = MODELS.build(copy.deepcopy(self._neck_cfg))
        own_neck.init_weights()
        self.teacher.module[1].load_state_dict(own_neck.state_dict())

    def train(self, mode: bool = True) -> 'DINO':
        """Set the student's mode; the teacher runs in eval mode except its BatchNorm.

        The reference builds its teacher without stochastic depth and leaves it in train
        mode, so a BN head (``use_bn=True``, DINO's ResNet setting) normalises the teacher's
        batch with the batch's own statistics. Here the teacher is in eval mode (no drop
        path) and only its BatchNorm layers follow ``mode``, so in training they normalise
        with the batch's statistics as the reference's do. Their running statistics are
        not averaged: mmengine's EMA update copies every buffer of the student into the
        teacher at each step (``update_buffers=False``), so an eval-mode teacher (e.g. the
        clustering extraction of HIRL) normalises with the student's running statistics,
        unless HIRL's ``momentum_buffers='own'`` keeps the teacher's own.
        """
        super().train(mode)
        self.teacher.eval()
        for module in self.teacher.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.train(mode)
        return self

    def update_teacher(self) -> None:
        """One EMA step of the teacher towards the current student."""
        self.teacher.update_parameters(nn.Sequential(self.backbone, self.neck))

    def student_scores(self, crops: List[Tensor], **neck_kwargs) -> List[Tensor]:
        """The student's neck outputs (first element) per run of equal-size crops."""
        return [self.neck(self.backbone(group), **neck_kwargs)[0]
                for group in group_by_resolution(crops)]

    def loss(self, inputs: List[Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        """The DINO loss of a multi-crop batch.

        Args:
            inputs (list[Tensor]): ``[B, C, H, W]`` views, the global crops first.
            data_samples (list[DataSample]): Unused.

        Returns:
            dict[str, Tensor]: ``loss``.
        """
        global_crops, local_crops = split_global_local(inputs, self.num_global_crops)
        with torch.no_grad():
            # As in mmpretrain's BYOL: at the start of step t, the EMA of the student of
            # step t - 1, i.e. the reference's update after step t - 1.
            self.update_teacher()
            teacher_logits = self.teacher(torch.cat(global_crops))[0]
        student_logits = torch.cat(self.student_scores(global_crops + local_crops))
        return dict(loss=self.head.loss(student_logits, teacher_logits))
