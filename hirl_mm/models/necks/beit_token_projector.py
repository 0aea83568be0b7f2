"""A projector on every token of a BEiT backbone: the reference code's HIRL-BEiT option.

hirl-team/HIRL ``hirl/models/beit.py`` can put an MLP (``layers.MLP(D, [D] *
num_mlp_layer, batch_norm=True)``) between the ViT and BEiT's masked-token classifier:
the classifier then reads the projected patch tokens, and HIRL's embedding
(``inst_cls_emb``) is the projected [CLS] token. Its ``beit_base_with_proj`` builds it with
two layers. (The released HIRL-BEiT run,
``configs/pretrain/hirl/hirl_beit_base_400eps.yaml``, builds ``beit_base`` instead, whose
projector is ``nn.Identity``.)

With this neck mmpretrain's ``BEiT`` takes its neck path: ``neck(backbone(x, mask),
rel_pos_bias=...)`` returns ``(tokens, cls)``, and ``BEiTV1ProjectedHead`` computes the
BEiT v1 loss on the projected tokens.
"""
from typing import List, Optional, Sequence, Tuple, Union

from mmengine.model import BaseModule
from torch import Tensor

from hirl_mm.registry import MODELS
from ..utils.reference_mlp import reference_mlp

__all__ = ['BEiTTokenProjector']


@MODELS.register_module()
class BEiTTokenProjector(BaseModule):
    """The reference's ``MLP(C, [C] * num_layers, batch_norm=True)`` on every token.

    ``num_layers`` counts the ``Linear`` layers, all ``C -> C``; each but the last has no
    bias and is followed by a norm (BatchNorm over the flattened ``B * L`` tokens, as the
    reference flattens all leading dimensions) and ReLU: ``num_layers=2`` is
    ``Linear(C, C, bias=False) - BN - ReLU - Linear(C, C)``. The last registered layer is
    the final ``Linear``, so the output width ``C`` can be read off the module.

    Args:
        in_channels (int): Token width ``C`` (768 for ViT-B). Defaults to 768.
        num_layers (int): ``Linear`` layers (>= 1). Defaults to 2.
        norm_cfg (dict): Norm after each hidden ``Linear``. Defaults to
            ``dict(type='BN1d')``; the reference converted it to SyncBN for multi-GPU
            training (``dict(type='SyncBN')``).
        init_cfg (dict | list[dict], optional): Initialisation config. Defaults to None
            (PyTorch's default initialisation, as the reference).
    """

    def __init__(self,
                 in_channels: int = 768,
                 num_layers: int = 2,
                 norm_cfg: dict = dict(type='BN1d'),
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if in_channels < 1 or num_layers < 1:
            raise ValueError(f'Need in_channels >= 1 and num_layers >= 1 (it counts the '
                             f'Linear layers), got {in_channels} and {num_layers}.')
        self.in_channels = in_channels
        self.num_layers = num_layers
        self.mlp = reference_mlp(in_channels, num_layers, norm_cfg)

    def forward(self, inputs: Sequence[Tensor],
                rel_pos_bias: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """Project every token of the backbone's last output.

        Args:
            inputs (Sequence[Tensor]): The backbone's outputs (a tuple, as mmpretrain's
                ``BEiTPretrainViT`` returns with ``out_type='raw'``); the last,
                ``[B, L, C]`` tokens with [CLS] first, is projected.
            rel_pos_bias (Tensor, optional): Passed by mmpretrain's ``BEiT`` to its necks;
                not used (the projector works on each token alone).

        Returns:
            tuple[Tensor, Tensor]: ``(tokens [B, L, C], cls [B, C])``: all projected tokens
            (for the masked-token classifier) and the projected [CLS] token, last, which is
            the embedding HIRL reads with ``embedding='neck'``.
        """
        tokens = inputs[-1] if isinstance(inputs, (list, tuple)) else inputs
        if tokens.dim() != 3 or tokens.shape[-1] != self.in_channels:
            raise ValueError(f'BEiTTokenProjector needs [B, L, {self.in_channels}] tokens '
                             f"(backbone out_type='raw'), got shape {tuple(tokens.shape)}.")
        projected = self.mlp(tokens.flatten(0, 1)).view_as(tokens)
        return projected, projected[:, 0]
