"""Self-distillation loss of DINO.

Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021,
arXiv:2104.14294.

The teacher's outputs on the global crops are centered (minus an EMA of their batch mean)
and sharpened (a low temperature), and the student is trained to predict them, by
cross-entropy, from every *other* crop, global or local. Centering keeps one dimension from
dominating, sharpening keeps the output from going uniform; together they avoid collapse.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce, get_world_size
from mmengine.model import BaseModule
from torch import Tensor

from hirl_mm.registry import MODELS

__all__ = ['DINOLoss', 'cross_crop_loss', 'ema_update_center']


def cross_crop_loss(teacher_probs: Sequence[Tensor], student_log_probs: Sequence[Tensor]
                    ) -> Tensor:
    """Mean cross-entropy over every (teacher crop q, student crop v) pair with v != q.

    Predicting a crop from itself teaches nothing, so those pairs are skipped; each pair's
    cross-entropy is averaged over the batch (DINO's loss and iBOT's [CLS] term).

    Args:
        teacher_probs (Sequence[Tensor]): ``(B, K)`` teacher probabilities per global crop.
        student_log_probs (Sequence[Tensor]): ``(B, K)`` student log-probabilities per
            crop, the global crops first (in the teacher's order).

    Returns:
        Tensor: The scalar mean over the pairs.
    """
    total = student_log_probs[0].new_zeros(())
    num_pairs = 0
    for q, t_probs in enumerate(teacher_probs):
        for v, s_log_probs in enumerate(student_log_probs):
            if v != q:
                total = total + torch.sum(-t_probs * s_log_probs, dim=-1).mean()
                num_pairs += 1
    return total / num_pairs


@torch.no_grad()
def ema_update_center(center: Tensor, rows: Tensor, momentum: float) -> None:
    """EMA-update ``center`` in place with the mean of ``rows`` over all ranks.

    Args:
        center (Tensor): ``(1, ..., K)`` buffer; updated in place, so it stays the same
            tensor (DDP's buffer broadcast and references to it keep working).
        rows (Tensor): ``(rows, K)`` teacher outputs of this rank.
        momentum (float): ``center = center * momentum + mean * (1 - momentum)``.
    """
    batch_center = rows.detach().to(center.dtype).sum(dim=0, keepdim=True)
    all_reduce(batch_center, op='sum')  # no-op without distribution
    batch_center = batch_center / (rows.shape[0] * get_world_size())
    center.mul_(momentum).add_(batch_center.view_as(center) * (1 - momentum))


@MODELS.register_module()
class DINOLoss(BaseModule):
    """Cross-entropy between the centered, sharpened teacher and the student.

    Args:
        out_channels (int): Number of output dimensions ``K`` of the DINO head.
        num_global_crops (int): Number of global crops; they come first in the student's
            input and are the only crops the teacher sees. Defaults to 2.
        student_temp (float): Temperature of the student's softmax. Defaults to 0.1.
        teacher_temp (float): Temperature of the teacher's softmax. A plain attribute, so a
            hook can warm it up (e.g. 0.04 -> 0.07) during training. Defaults to 0.07.
        center_momentum (float): EMA momentum of the center. Defaults to 0.9.
        loss_weight (float): Factor of the loss. Defaults to 1.0.
        init_cfg (dict, optional): Initialization config of :class:`BaseModule`.
    """

    def __init__(self,
                 out_channels: int,
                 num_global_crops: int = 2,
                 student_temp: float = 0.1,
                 teacher_temp: float = 0.07,
                 center_momentum: float = 0.9,
                 loss_weight: float = 1.0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if out_channels < 1:
            raise ValueError(f'out_channels must be positive, got {out_channels}')
        if num_global_crops < 1:
            raise ValueError(f'num_global_crops must be positive, got {num_global_crops}')
        self.out_channels = out_channels
        self.num_global_crops = num_global_crops
        self.student_temp = student_temp
        self.teacher_temp = teacher_temp
        self.center_momentum = center_momentum
        self.loss_weight = loss_weight
        # Persistent, so that a resumed run continues with the same center.
        self.register_buffer('center', torch.zeros(1, out_channels))

    def _check_shapes(self, student_logits: Tensor, teacher_logits: Tensor) -> int:
        """Validate the inputs of :meth:`forward`; return the number of student crops."""
        for name, x in (('student_logits', student_logits), ('teacher_logits', teacher_logits)):
            if x.dim() != 2:
                raise ValueError(f'{name} must be (rows, K), got shape {tuple(x.shape)}')
            if x.shape[1] != self.out_channels:
                raise ValueError(f'{name} has {x.shape[1]} channels, expected out_channels='
                                 f'{self.out_channels}')
        t_rows, s_rows = teacher_logits.shape[0], student_logits.shape[0]
        if t_rows == 0 or t_rows % self.num_global_crops != 0:
            raise ValueError(f'teacher_logits has {t_rows} rows, which is not a positive '
                             f'multiple of num_global_crops={self.num_global_crops}')
        batch_size = t_rows // self.num_global_crops
        if s_rows % batch_size != 0:
            raise ValueError(f'student_logits has {s_rows} rows, which is not divisible by the '
                             f'batch size {batch_size} given by teacher_logits')
        num_crops = s_rows // batch_size
        if num_crops < self.num_global_crops:
            raise ValueError(f'student_logits holds {num_crops} crops, fewer than '
                             f'num_global_crops={self.num_global_crops}')
        if num_crops < 2:
            raise ValueError('at least two crops are needed: a teacher crop is never compared '
                             'with the student output of the same crop')
        return num_crops

    def forward(self,
                student_logits: Tensor,
                teacher_logits: Tensor,
                update_center: bool = True) -> Tensor:
        """Compute the DINO loss and, by default, update the center.

        Args:
            student_logits (Tensor): Student head outputs of shape ``(num_crops * B, K)``,
                crop-major (rows ``[cB:(c+1)B]`` are crop ``c``), global crops first.
            teacher_logits (Tensor): Teacher head outputs of the global crops, shape
                ``(num_global_crops * B, K)``, crop-major.
            update_center (bool): Whether to update the center with ``teacher_logits``
                after computing the loss, as the reference does in every call.
                Defaults to True.

        Returns:
            Tensor: The scalar loss, averaged over the (teacher crop, other student crop)
            pairs and multiplied by ``loss_weight``.
        """
        num_crops = self._check_shapes(student_logits, teacher_logits)
        student_crops = F.log_softmax(student_logits / self.student_temp, dim=-1).chunk(num_crops)
        # The teacher is a target only; the loss uses the center from before this batch.
        with torch.no_grad():
            teacher_probs = F.softmax((teacher_logits - self.center) / self.teacher_temp, dim=-1)
        teacher_crops = teacher_probs.chunk(self.num_global_crops)
        loss = cross_crop_loss(teacher_crops, student_crops) * self.loss_weight

        if update_center:
            self.update_center(teacher_logits)
        return loss

    @torch.no_grad()
    def update_center(self, teacher_logits: Tensor) -> None:
        """EMA-update the center with the mean of ``teacher_logits`` over all ranks.

        Args:
            teacher_logits (Tensor): Teacher head outputs of shape ``(rows, K)``.
        """
        ema_update_center(self.center, teacher_logits, self.center_momentum)
