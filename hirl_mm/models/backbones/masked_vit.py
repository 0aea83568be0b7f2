"""mmpretrain's Vision Transformer as DINO and iBOT pre-train it.

Two differences from :class:`mmpretrain.models.VisionTransformer`, both from the papers'
code (facebookresearch/dino ``vision_transformer.py``, bytedance/ibot
``models/vision_transformer.py``):

* initialisation: truncated-normal (std 0.02) [CLS] token, position embedding and Linear
  weights, zero biases, unit LayerNorms (mmpretrain leaves Linear layers at PyTorch's
  default and the [CLS] token at zero);
* ``forward(x, mask)``: iBOT's masked image modelling replaces the embeddings of masked
  patches by a learned ``mask_token`` before the position embedding is added.

An option, ``pos_embed_interpolation``, chooses how the position embedding is interpolated to
another patch grid (e.g. 6 x 6 for 96-pixel local crops): mmpretrain's ``resize_pos_embed``
(``'size'``, the default) or DINO's ``interpolate_pos_encoding`` (``'scale_factor'``), which
the HIRL authors' ViT (``hirl/backbones/vision_transformer.py``) also uses.

The parameter names are mmpretrain's, so the backbone loads key for key into
``VisionTransformer`` for classification, detection and segmentation (without
``mask_token``, which only pre-training uses; see
:func:`hirl_mm.utils.teacher_backbone.teacher_backbone_state`).
"""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model.weight_init import trunc_normal_
from mmpretrain.models import VisionTransformer
from mmpretrain.models.utils import resize_pos_embed
from torch import Tensor, nn

from hirl_mm.registry import MODELS

__all__ = ['MaskedVisionTransformer', 'interpolate_pos_embed_by_scale']

POS_EMBED_INTERPOLATIONS = ('size', 'scale_factor')


def interpolate_pos_embed_by_scale(pos_embed: Tensor,
                                   src_shape: Sequence[int],
                                   dst_shape: Sequence[int],
                                   mode: str = 'bicubic',
                                   num_extra_tokens: int = 1) -> Tensor:
    """DINO's position-embedding interpolation (``interpolate_pos_encoding``).

    facebookresearch/dino (and the HIRL authors' ViT) interpolate the ``S x S`` grid of
    patch embeddings with ``scale_factor = (h0 + 0.1) / S, (w0 + 0.1) / S`` for an
    ``h0 x w0`` patch grid, not to ``size=(h0, w0)``. With ``F.interpolate``'s default
    ``recompute_scale_factor=None`` the output grid is ``floor(S * scale) = h0 x w0`` (the
    0.1 guards against a float product just below ``h0``), but the kernel samples the
    source with that scale, i.e. at ``(i + 0.5) * S / (h0 + 0.1) - 0.5`` rather than
    ``(i + 0.5) * S / h0 - 0.5``: slightly different embeddings whenever the grid changes
    (e.g. 6 x 6 from 14 x 14 for 96-pixel crops of a ViT-B/16 at 224).

    Args:
        pos_embed (Tensor): ``[1, num_extra_tokens + src_h * src_w, C]``.
        src_shape (Sequence[int]): ``(src_h, src_w)``, the grid ``pos_embed`` was made for.
        dst_shape (Sequence[int]): ``(h0, w0)``, the patch grid of the input.
        mode (str): The interpolation mode. Defaults to ``'bicubic'``.
        num_extra_tokens (int): Leading tokens ([CLS]) kept as they are. Defaults to 1.

    Returns:
        Tensor: ``[1, num_extra_tokens + h0 * w0, C]``; ``pos_embed`` itself when the grids
        are equal.
    """
    src_h, src_w = src_shape
    dst_h, dst_w = dst_shape
    if (src_h, src_w) == (dst_h, dst_w):
        return pos_embed
    _, length, channels = pos_embed.shape
    if length != num_extra_tokens + src_h * src_w:
        raise ValueError(f'The position embedding has {length} tokens, not '
                         f'{num_extra_tokens} + {src_h} x {src_w}.')
    extra, grid = pos_embed[:, :num_extra_tokens], pos_embed[:, num_extra_tokens:]
    grid = grid.reshape(1, src_h, src_w, channels).permute(0, 3, 1, 2)
    # Bicubic interpolation wants float32 (as mmpretrain's resize_pos_embed casts).
    grid = F.interpolate(grid.float(), mode=mode,
                         scale_factor=((dst_h + 0.1) / src_h, (dst_w + 0.1) / src_w))
    if tuple(grid.shape[-2:]) != (dst_h, dst_w):  # DINO asserts this too
        raise RuntimeError(f'Interpolating the {src_h} x {src_w} position embedding gave '
                           f'a {tuple(grid.shape[-2:])} grid, not {dst_h} x {dst_w}.')
    grid = grid.flatten(2).transpose(1, 2).to(pos_embed.dtype)
    return torch.cat((extra, grid), dim=1)


@MODELS.register_module()
class MaskedVisionTransformer(VisionTransformer):
    """A ViT with DINO's initialisation and iBOT's optional patch masking.

    Args:
        use_mask_token (bool): Create the learned ``mask_token`` that replaces masked
            patches (iBOT). DINO does not mask and leaves it out. Defaults to False.
        pos_embed_interpolation (str): How the position embedding is interpolated for an
            input whose patch grid differs from ``img_size``'s (local crops):
            ``'size'``, mmpretrain's ``resize_pos_embed`` (``interpolate_mode`` to the
            grid's size), or ``'scale_factor'``, DINO's and the HIRL authors' way (see
            :func:`interpolate_pos_embed_by_scale`). Equal grids use the embedding as it
            is either way. Defaults to ``'size'``.
        *args, **kwargs: Those of :class:`mmpretrain.models.VisionTransformer`.
    """

    def __init__(self, *args, use_mask_token: bool = False,
                 pos_embed_interpolation: str = 'size', **kwargs) -> None:
        if pos_embed_interpolation not in POS_EMBED_INTERPOLATIONS:
            raise ValueError(f'pos_embed_interpolation={pos_embed_interpolation!r}; '
                             f'choose one of {POS_EMBED_INTERPOLATIONS}.')
        super().__init__(*args, **kwargs)
        self.pos_embed_interpolation = pos_embed_interpolation
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
        x = x + self.interpolated_pos_embed(patch_resolution)
        x = self.pre_norm(self.drop_after_pos(x))
        outs = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i == len(self.layers) - 1 and self.final_norm:
                x = self.ln1(x)
            if i in self.out_indices:
                outs.append(self._format_output(x, patch_resolution))
        return tuple(outs)

    def interpolated_pos_embed(self, patch_resolution: Sequence[int]) -> Tensor:
        """The position embedding for a ``patch_resolution`` grid of patches, interpolated
        as ``pos_embed_interpolation`` says."""
        resize = interpolate_pos_embed_by_scale \
            if self.pos_embed_interpolation == 'scale_factor' else resize_pos_embed
        return resize(self.pos_embed, self.patch_resolution, patch_resolution,
                      mode=self.interpolate_mode, num_extra_tokens=self.num_extra_tokens)

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
