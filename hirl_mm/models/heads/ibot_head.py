"""iBOT's head: self-distillation on [CLS] across crops and on masked patches within one.

The projection is :class:`hirl_mm.models.necks.iBOTNeck`; this head holds the loss and its
two teacher centres (see :class:`hirl_mm.models.losses.iBOTLoss`).
"""
from typing import Dict

from mmengine.model import BaseModule
from torch import Tensor

from hirl_mm.registry import MODELS

__all__ = ['iBOTHead']


@MODELS.register_module()
class iBOTHead(BaseModule):
    """The iBOT loss: a [CLS] term (as DINO's) and a masked-image-modelling patch term.

    Args:
        loss (dict): Config of the loss, e.g.
            ``dict(type='iBOTLoss', out_channels=8192, patch_out_channels=8192)``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self, loss: dict, init_cfg=None) -> None:
        super().__init__(init_cfg)
        self.loss_module = MODELS.build(loss)

    def loss(self, student_cls: Tensor, student_patch: Tensor, teacher_cls: Tensor,
             teacher_patch: Tensor, masks: Tensor) -> Dict[str, Tensor]:
        """The iBOT loss terms.

        Args:
            student_cls (Tensor): ``[num_crops * B, K]``, crop-major, global crops first.
            student_patch (Tensor): ``[num_global_crops * B, N, Kp]`` scores of the
                student's masked global crops.
            teacher_cls (Tensor): ``[num_global_crops * B, K]``.
            teacher_patch (Tensor): ``[num_global_crops * B, N, Kp]`` (unmasked crops).
            masks (Tensor): ``[num_global_crops * B, N]`` booleans, True where masked.

        Returns:
            dict[str, Tensor]: ``loss_cls`` and ``loss_patch``.
        """
        return self.loss_module(student_cls, student_patch, teacher_cls, teacher_patch,
                                masks)
