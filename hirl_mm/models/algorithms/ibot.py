"""iBOT: image BERT pre-training with an online tokenizer (Zhou et al., ICLR 2022,
arXiv 2111.07832).

DINO's [CLS] self-distillation across crops plus masked image modelling: the student's
global crops have block-wise masked patches (``iBOTMaskGenerator`` in the pipeline,
replaced by the backbone's mask token); on each global crop the student's scores of
its masked patches match the teacher's scores of the same, unmasked patches
(:class:`~hirl_mm.models.losses.iBOTLoss`, with its own centre and temperature).
Local crops are not masked and only enter the [CLS] term.

The backbone must output all tokens (``MaskedVisionTransformer`` with
``use_mask_token=True, out_type='raw'``); the neck is :class:`~hirl_mm.models.necks.iBOTNeck`.
Teacher, schedules and hooks are DINO's (:class:`~hirl_mm.models.algorithms.DINO`),
``teacher_neck_init`` included: with ``'independent'`` the teacher's whole neck, a
separate patch layer (``shared_head=False``) too, starts from its own random init.
"""
from typing import Dict, List

import torch
from mmpretrain.structures import DataSample
from torch import Tensor

from hirl_mm.registry import MODELS
from ..utils.multi_crop import split_global_local
from .dino import DINO

__all__ = ['iBOT']


@MODELS.register_module()
class iBOT(DINO):
    """iBOT, in mmpretrain's self-supervised layout (arguments: those of :class:`DINO`)."""

    def _global_crop_masks(self, data_samples: List[DataSample], global_crops: List[Tensor]
                           ) -> Tensor:
        """``[num_global_crops * B, N]`` masks, crop-major, from the data samples."""
        if not data_samples or 'mask' not in data_samples[0]:
            raise ValueError('iBOT needs a patch mask per global crop in the data samples: '
                             "add dict(type='iBOTMaskGenerator', ...) between MultiView and "
                             'PackInputs in the train pipeline.')
        masks = torch.stack([torch.as_tensor(sample.mask) for sample in data_samples])
        device = global_crops[0].device
        if masks.dim() != 4 or masks.shape[1] != self.num_global_crops:
            raise ValueError(f'Expected masks of shape [B, {self.num_global_crops}, h, w] '
                             f'(one per global crop), got {tuple(masks.shape)}; set '
                             f'num_masked_views={self.num_global_crops} in iBOTMaskGenerator.')
        # [B, G, h, w] -> [G * B, h * w], crop-major as the crops are concatenated.
        return masks.to(device=device, dtype=torch.bool).transpose(0, 1).flatten(2).flatten(0, 1)

    def loss(self, inputs: List[Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, Tensor]:
        """The iBOT loss of a multi-crop batch.

        Args:
            inputs (list[Tensor]): ``[B, C, H, W]`` views, the global crops first.
            data_samples (list[DataSample]): With ``mask``: ``[G, h, w]`` patch masks of
                the global crops.

        Returns:
            dict[str, Tensor]: ``loss_cls`` and ``loss_patch``.
        """
        global_crops, local_crops = split_global_local(inputs, self.num_global_crops)
        masks = self._global_crop_masks(data_samples, global_crops)
        globals_batch = torch.cat(global_crops)
        with torch.no_grad():
            self.update_teacher()
            teacher_cls, teacher_patch = self.teacher(globals_batch)[:2]
        student_cls, student_patch = self.neck(self.backbone(globals_batch, mask=masks))[:2]
        if local_crops:
            local_cls = self.student_scores(local_crops, with_patches=False)
            student_cls = torch.cat([student_cls] + local_cls)
        return self.head.loss(student_cls, student_patch, teacher_cls, teacher_patch, masks)
