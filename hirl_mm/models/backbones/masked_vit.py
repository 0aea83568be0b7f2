"""mmpretrain's Vision Transformer as DINO and iBOT pre-train it.

Two differences from :class:`mmpretrain.models.VisionTransformer`, both from the papers'
code (facebookresearch/dino ``vision_transformer.py``, bytedance/ibot
``models/vision_transformer.py``):

* initialisation: truncated-normal (std 0.02) [CLS] token, position embedding and Linear
  weights, zero biases, unit LayerNorms (mmpretrain leaves Linear layers at PyTorch's
  default and the [CLS] token at zero);
* ``forward(x, mask)``: iBOT's masked image modelling replaces the embeddings of masked
  patches by a learned ``mask_token`` before the position embedding is added.

The parameter names are mmpretrain's, so the backbone loads key for key into
``VisionTransformer`` for classification, detection and segmentation (without
``mask_token``, which only pre-training uses; see
:func:`hirl_mm.utils.teacher_backbone.teacher_backbone_state`).
"""
from typing import Optional, Tuple

import torch
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from torch import Tensor, nn

from hirl_mm.registry import MODELS

__all__ = ['MaskedVisionTransformer']


@MODELS.register_module()
class MaskedVisionTransformer(VisionTransformer):
    """A ViT with DINO's initialisation and iBOT's optional patch masking.

    Args:
        use_mask_token (bool): Create the learned ``mask_token`` that replaces masked
            patches (iBOT). DINO does not mask and leaves it out. Defaults to False.
        *args, **kwargs: Those of :class:`mmpretrain.models.VisionTransformer`.
    """

    def __init__(self, *args, use_mask_token: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, self.embed_dims)) \
            if use_mask_token else None

    def init_weights(self) -> None:
        """DINO's initialisation, unless the weights come from a checkpoint."""
        super().init_weights()
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            return
        if self.cls_token is not None:
            trunc_normal_(self.cls_token, std=.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tuple[Tensor, ...]:
        """Embed images, replacing the masked patches by the mask token first.

        Args:
            x (Tensor): ``[B, C, H, W]`` images; any size divisible by the patch size
                (the position embedding is interpolated, e.g. for 96-pixel local crops).
            mask (Tensor, optional): ``[B, H / p, W / p]`` (or ``[B, N]``) booleans, True
                where the patch is masked. Needs ``use_mask_token=True``.

        Returns:
            tuple[Tensor]: One output per ``out_indices``, formatted by ``out_type``.
        """
        batch = x.shape[0]
        x, patch_resolution = self.patch_embed(x)
        if mask is not None:
            x = self._mask_patches(x, mask)
        if self.cls_token is not None:
            x = torch.cat((self.cls_token.expand(batch, -1, -1), x), dim=1)
        x = x + resize_pos_embed(self.pos_embed, self.patch_resolution, patch_resolution,
                                 mode=self.interpolate_mode,
                                 num_extra_tokens=self.num_extra_tokens)
        x = self.pre_norm(self.drop_after_pos(x))
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, patch_resolution))
        return tuple(outs)

    def _mask_patches(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """``tokens`` with the mask token where ``mask`` is True."""
        if self.mask_token is None:
            raise ValueError(f'{type(self).__name__} got a patch mask but has no mask '
                             'token; build it with use_mask_token=True (iBOT).')
        mask = mask.flatten(1)
        if mask.shape != tokens.shape[:2]:
            raise ValueError(f'The patch mask has {tuple(mask.shape)} entries for '
                             f'{tuple(tokens.shape[:2])} patch tokens (batch, patches); '
                             'generate it with the patch size of the backbone.')
        return torch.where(mask.unsqueeze(-1), self.mask_token.to(tokens.dtype), tokens)
