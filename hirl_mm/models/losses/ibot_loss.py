"""Self-distillation loss of iBOT: DINO on [CLS] plus masked image modeling on patches.

Zhou et al., "iBOT: Image BERT Pre-Training with Online Tokenizer", ICLR 2022,
arXiv:2111.07832.

The [CLS] term is DINO's: the centered, sharpened teacher output of each global crop is
predicted from every other crop. The patch term is the online-tokenizer MIM loss: on the same
global crop, the student (which saw some patches masked) predicts the teacher's (unmasked)
patch distributions at the masked positions. Each term keeps its own center and temperature.
"""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from hirl_mm.registry import MODELS
from .dino_loss import cross_crop_loss, ema_update_center

__all__ = ['iBOTLoss']


@MODELS.register_module()
class iBOTLoss(BaseModule):  # noqa: N801  (the paper's spelling)
    """[CLS] self-distillation and masked patch self-distillation of iBOT.

    Args:
        out_channels (int): Output dimensions ``K`` of the [CLS] head.
        patch_out_channels (int): Output dimensions ``Kp`` of the patch head.
        num_global_crops (int): Number of global crops; they come first in the student's
            [CLS] input and are the only crops with patch outputs. Defaults to 2.
        student_temp (float): Temperature of the student's softmaxes. Defaults to 0.1.
        teacher_temp (float): Teacher [CLS] temperature; a plain attribute that a warm-up
            hook may set. Defaults to 0.07.
        teacher_patch_temp (float): Teacher patch temperature; likewise. Defaults to 0.07.
        center_momentum (float): EMA momentum of the [CLS] center. Defaults to 0.9.
        patch_center_momentum (float): EMA momentum of the patch center. Defaults to 0.9.
        lambda_cls (float): Weight of the [CLS] term. Defaults to 1.0.
        lambda_patch (float): Weight of the patch term. Defaults to 1.0.
        init_cfg (dict, optional): Initialization config of :class:`BaseModule`.
    """

    def __init__(self,
                 out_channels: int,
                 patch_out_channels: int,
                 num_global_crops: int = 2,
                 student_temp: float = 0.1,
                 teacher_temp: float = 0.07,
                 teacher_patch_temp: float = 0.07,
                 center_momentum: float = 0.9,
                 patch_center_momentum: float = 0.9,
                 lambda_cls: float = 1.0,
                 lambda_patch: float = 1.0,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if out_channels < 1 or patch_out_channels < 1:
            raise ValueError(f'out_channels ({out_channels}) and patch_out_channels '
                             f'({patch_out_channels}) must be positive')
        if num_global_crops < 1:
            raise ValueError(f'num_global_crops must be positive, got {num_global_crops}')
        self.out_channels = out_channels
        self.patch_out_channels = patch_out_channels
        self.num_global_crops = num_global_crops
        self.student_temp = student_temp
        self.teacher_temp = teacher_temp
        self.teacher_patch_temp = teacher_patch_temp
        self.center_momentum = center_momentum
        self.patch_center_momentum = patch_center_momentum
        self.lambda_cls = lambda_cls
        self.lambda_patch = lambda_patch
        # Persistent, so that a resumed run continues with the same centers.
        self.register_buffer('center', torch.zeros(1, out_channels))
        self.register_buffer('patch_center', torch.zeros(1, 1, patch_out_channels))

    def _check_shapes(self, student_cls: Tensor, student_patch: Tensor, teacher_cls: Tensor,
                      teacher_patch: Tensor, masks: Tensor) -> int:
        """Validate the inputs of :meth:`forward`; return the number of student crops."""
        for name, x in (('student_cls', student_cls), ('teacher_cls', teacher_cls)):
            if x.dim() != 2 or x.shape[1] != self.out_channels:
                raise ValueError(f'{name} must be (rows, out_channels={self.out_channels}), '
                                 f'got shape {tuple(x.shape)}')
        for name, x in (('student_patch', student_patch), ('teacher_patch', teacher_patch)):
            if x.dim() != 3 or x.shape[2] != self.patch_out_channels:
                raise ValueError(f'{name} must be (rows, N, patch_out_channels='
                                 f'{self.patch_out_channels}), got shape {tuple(x.shape)}')
        rows = teacher_cls.shape[0]
        if rows == 0 or rows % self.num_global_crops != 0:
            raise ValueError(f'teacher_cls has {rows} rows, which is not a positive multiple '
                             f'of num_global_crops={self.num_global_crops}')
        if student_patch.shape != teacher_patch.shape or teacher_patch.shape[0] != rows:
            raise ValueError(f'student_patch {tuple(student_patch.shape)} and teacher_patch '
                             f'{tuple(teacher_patch.shape)} must both be ({rows}, N, '
                             f'{self.patch_out_channels}), one row per global crop image')
        if masks.dim() != 2 or masks.shape[0] != rows:
            raise ValueError(f'masks must be ({rows}, N), got shape {tuple(masks.shape)}')
        if masks.shape[1] != student_patch.shape[1]:
            raise ValueError(f'masks cover {masks.shape[1]} patches but the patch logits have '
                             f'{student_patch.shape[1]} tokens')
        batch_size = rows // self.num_global_crops
        if student_cls.shape[0] % batch_size != 0:
            raise ValueError(f'student_cls has {student_cls.shape[0]} rows, which is not '
                             f'divisible by the batch size {batch_size} given by teacher_cls')
        num_crops = student_cls.shape[0] // batch_size
        if num_crops < max(self.num_global_crops, 2):
            raise ValueError(f'student_cls holds {num_crops} crops; it needs the '
                             f'{self.num_global_crops} global crops and at least two crops '
                             f'in all, so that some [CLS] pair compares different crops')
        return num_crops

    def forward(self,
                student_cls: Tensor,
                student_patch: Tensor,
                teacher_cls: Tensor,
                teacher_patch: Tensor,
                masks: Tensor,
                update_center: bool = True) -> Dict[str, Tensor]:
        """Compute the [CLS] and patch losses and, by default, update both centers.

        Args:
            student_cls (Tensor): Student [CLS] logits ``(num_crops * B, K)``, crop-major,
                global crops first, then local crops.
            student_patch (Tensor): Student patch logits of the masked global crops,
                ``(num_global_crops * B, N, Kp)``, crop-major.
            teacher_cls (Tensor): Teacher [CLS] logits of the global crops,
                ``(num_global_crops * B, K)``.
            teacher_patch (Tensor): Teacher patch logits of the unmasked global crops,
                ``(num_global_crops * B, N, Kp)``.
            masks (Tensor): ``(num_global_crops * B, N)``, nonzero/True where the patch was
                masked in the student's input.
            update_center (bool): Whether to update the centers after computing the loss,
                as the reference does in every call. Defaults to True.

        Returns:
            dict[str, Tensor]: ``loss_cls`` (weighted by ``lambda_cls``) and ``loss_patch``
            (weighted by ``lambda_patch``), both scalars.
        """
        num_crops = self._check_shapes(student_cls, student_patch, teacher_cls, teacher_patch,
                                       masks)
        ng = self.num_global_crops
        s_cls = F.log_softmax(student_cls / self.student_temp, dim=-1).chunk(num_crops)
        s_patch = F.log_softmax(student_patch / self.student_temp, dim=-1).chunk(ng)
        # Targets only; they use the centers from before this batch.
        with torch.no_grad():
            t_cls = F.softmax((teacher_cls - self.center) / self.teacher_temp, dim=-1).chunk(ng)
            t_patch = F.softmax((teacher_patch - self.patch_center) / self.teacher_patch_temp,
                                dim=-1).chunk(ng)
        mask_crops = masks.bool().chunk(ng)

        # Same crop (q == v): MIM on the patches the student did not see.
        loss_patch = student_patch.new_zeros(())
        for q in range(ng):
            per_patch = torch.sum(-t_patch[q] * s_patch[q], dim=-1)  # (B, N)
            mask = mask_crops[q].to(per_patch.dtype)
            # clamp: an image without masked patches adds 0, not NaN.
            per_image = (per_patch * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
            loss_patch = loss_patch + per_image.mean()
        losses = dict(
            loss_cls=cross_crop_loss(t_cls, s_cls) * self.lambda_cls,
            loss_patch=loss_patch / ng * self.lambda_patch)

        if update_center:
            self.update_center(teacher_cls, teacher_patch)
        return losses

    @torch.no_grad()
    def update_center(self, teacher_cls: Tensor, teacher_patch: Tensor) -> None:
        """EMA-update both centers with the teacher outputs' means over all ranks.

        Args:
            teacher_cls (Tensor): Teacher [CLS] logits ``(rows, K)``.
            teacher_patch (Tensor): Teacher patch logits ``(rows, N, Kp)``; averaged over
                tokens first, then over images.
        """
        ema_update_center(self.center, teacher_cls, self.center_momentum)
        ema_update_center(self.patch_center, teacher_patch.mean(dim=1),
                          self.patch_center_momentum)
