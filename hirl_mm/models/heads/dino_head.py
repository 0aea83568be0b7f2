"""DINO's head: the self-distillation loss between student and teacher prototype scores.

The projection (MLP, bottleneck, prototype layer) is :class:`hirl_mm.models.necks.DINONeck`,
shared by student and teacher; this head holds the loss and its state (the teacher
centre), as mmpretrain's self-supervised heads hold theirs.
"""
from mmengine.model import BaseModule
from torch import Tensor

from hirl_mm.registry import MODELS

__all__ = ['DINOHead']


@MODELS.register_module()
class DINOHead(BaseModule):
    """Cross-entropy between the centred, sharpened teacher and the student (DINO).

    Args:
        loss (dict): Config of the loss, e.g. ``dict(type='DINOLoss', out_channels=65536)``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self, loss: dict, init_cfg=None) -> None:
        super().__init__(init_cfg)
        self.loss_module = MODELS.build(loss)

    def loss(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        """The DINO loss.

        Args:
            student_logits (Tensor): ``[num_crops * B, K]`` student scores, crop-major,
                global crops first.
            teacher_logits (Tensor): ``[num_global_crops * B, K]`` teacher scores.

        Returns:
            Tensor: The scalar loss.
        """
        return self.loss_module(student_logits, teacher_logits)
