"""BEiT v1's masked-token classifier behind a neck (the reference's HIRL-BEiT projector)."""
from typing import Optional

from mmpretrain.models.heads import BEiTV1Head
from torch import Tensor

from hirl_mm.registry import MODELS

__all__ = ['BEiTV1ProjectedHead']


@MODELS.register_module()
class BEiTV1ProjectedHead(BEiTV1Head):
    """:class:`BEiTV1Head` for a BEiT whose backbone output passes through a neck.

    With a neck, mmpretrain's ``BEiT.loss`` takes its BEiT v2 path and calls
    ``head.loss(feats, feats_cls_pt, target, mask)`` with the neck's two outputs. Paired
    with ``BEiTTokenProjector`` (``feats``: every projected token), this head computes BEiT
    v1's loss on the projected tokens: a linear classifier over the tokenizer's vocabulary
    on the masked patch tokens, cross-entropy against the DALL-E tokens, as the reference's
    ``vit_model.head(projector(tokens)[:, 1:][mask])``.

    Args: as :class:`BEiTV1Head` (``embed_dims``, ``num_embed``, ``loss``, ``init_cfg``).
    """

    def loss(self, feats: Tensor, feats_cls_pt: Optional[Tensor], target: Tensor,
             mask: Tensor) -> Tensor:
        """BEiT v1's masked-token cross-entropy on the projected tokens.

        Args:
            feats (Tensor): ``[B, L, C]`` projected tokens, [CLS] first.
            feats_cls_pt (Tensor, optional): The neck's second output (the projected
                [CLS] token for ``BEiTTokenProjector``); not used by BEiT v1's loss.
            target (Tensor): ``[B, num_embed, h, w]`` tokenizer logits (DALL-E).
            mask (Tensor): ``[B, h, w]`` masked patches.

        Returns:
            Tensor: The loss.
        """
        return super().loss(feats, target, mask)
