"""DINO / iBOT's linear-probe features of a ViT-B: [CLS] next to the mean patch token.

facebookresearch/dino ``eval_linear.py`` (``n_last_blocks=1, avgpool_patchtokens=True``
for ViT-B) and bytedance/ibot ``evaluation/eval_linear.py`` classify the final-norm [CLS]
token concatenated with the average of the final-norm patch tokens (768 + 768 = 1536-d
for ViT-B). mmpretrain's ``out_type='avg_featmap'`` would add a LayerNorm the pre-trained
checkpoint does not have, hence this parameter-free neck on ``out_type='raw'`` tokens.
"""
from typing import Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor

from hirl_mm.registry import MODELS

__all__ = ['ClsAvgPoolNeck']


@MODELS.register_module()
class ClsAvgPoolNeck(BaseModule):
    """``[CLS] ++ mean(patch tokens)`` of a ViT's token output (no parameters).

    Args:
        num_extra_tokens (int): Tokens before the patches ([CLS]: 1).
    """

    def __init__(self, num_extra_tokens: int = 1) -> None:
        super().__init__()
        self.num_extra_tokens = num_extra_tokens

    def forward(self, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor]:
        """Concatenate the [CLS] token and the mean patch token.

        Args:
            inputs (tuple[Tensor]): The backbone outputs; the last, ``[B, L, C]`` tokens
                (``out_type='raw'``, final norm applied), is used.

        Returns:
            tuple[Tensor]: ``([B, 2C],)``.
        """
        tokens = inputs[-1]
        if tokens.dim() != 3:
            raise ValueError(f'ClsAvgPoolNeck needs the ViT\'s tokens [B, L, C], got shape '
                             f"{tuple(tokens.shape)}; set out_type='raw' in the backbone.")
        patches = tokens[:, self.num_extra_tokens:]
        return (torch.cat([tokens[:, 0], patches.mean(dim=1)], dim=-1), )
