"""The DINO projection head (a neck in mmpretrain's terms) and iBOT's variant of it.

DINO (arXiv 2104.14294, facebookresearch/dino ``vision_transformer.py``, ``DINOHead``): an
MLP (``num_layers`` Linear layers, GELU between them, width ``hidden_channels``) down to a
``bottleneck_channels`` embedding, L2-normalised, then a weight-normalised Linear layer
without bias to ``out_channels`` prototype scores. With ``norm_last_layer`` the weight
norm's gain is fixed at 1 (the papers' ViT-B/16 setting).

iBOT (arXiv 2111.07832, bytedance/ibot ``models/head.py``, ``iBOTHead``) applies the same
MLP to every output token and scores the [CLS] token and the patch tokens with their own
last layers, or with one shared layer (``shared_head``, the ViT-B/16 setting).

The bottleneck (:meth:`DINONeck.bottleneck`, on [CLS]) is the space the HIRL reference trains
and clusters for these methods; both necks return it as their last output, which is what
HIRL's ``embedding='neck'`` reads of a neck.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from torch import Tensor, nn

from hirl_mm.registry import MODELS

__all__ = ['WeightNormLinear', 'DINONeck', 'iBOTNeck']


class WeightNormLinear(nn.Module):
    """``y = x W^T`` with ``W = g * V / ||V||`` row-wise, no bias (DINO's last layer).

    Written out rather than with ``torch.nn.utils.weight_norm`` (deprecated, and a
    forward pre-hook that deep copies into an EMA teacher poorly); the parameter names
    ``weight_g`` / ``weight_v`` are those of the reference checkpoints.

    Args:
        in_channels (int): Input width.
        out_channels (int): Output width.
        fix_norm (bool): Keep the gain ``g`` at 1 (not trained).
    """

    def __init__(self, in_channels: int, out_channels: int, fix_norm: bool = True) -> None:
        super().__init__()
        # V as nn.Linear initialises its weight; g = 1 as the reference sets it.
        self.weight_v = nn.Parameter(nn.Linear(in_channels, out_channels, bias=False).weight
                                     .detach().clone())
        self.weight_g = nn.Parameter(torch.ones(out_channels, 1), requires_grad=not fix_norm)

    def forward(self, x: Tensor) -> Tensor:
        weight = self.weight_g * self.weight_v / self.weight_v.norm(dim=1, keepdim=True)
        return F.linear(x, weight)


def _mlp(in_channels: int, hidden_channels: int, out_channels: int, num_layers: int,
         use_bn: bool) -> nn.Sequential:
    """DINO's projection MLP: Linear (+ BN) + GELU between ``num_layers`` Linear layers."""
    if num_layers < 1:
        raise ValueError(f'num_layers must be >= 1 (got {num_layers}).')
    widths = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
    layers = []
    for i in range(num_layers):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < num_layers - 1:
            if use_bn:
                layers.append(nn.BatchNorm1d(widths[i + 1]))
            layers.append(nn.GELU())
    return nn.Sequential(*layers)


@MODELS.register_module()
class DINONeck(BaseModule):
    """MLP -> bottleneck -> L2 norm -> weight-normalised prototype layer.

    Args:
        in_channels (int): Width of the backbone output ([CLS] token).
        out_channels (int): Number of prototypes (65536 for DINO ViT-B/16).
        hidden_channels (int): Width of the hidden layers. Defaults to 2048.
        bottleneck_channels (int): Width of the bottleneck. Defaults to 256.
        num_layers (int): Linear layers of the MLP. Defaults to 3.
        use_bn (bool): BatchNorm after the hidden layers (DINO's ResNet setting).
            Defaults to False.
        norm_last_layer (bool): Fix the last layer's weight-norm gain at 1.
            Defaults to True.
        init_cfg (dict, optional): Initialisation config; by default DINO's
            (truncated-normal Linear weights, std 0.02, zero biases).
    """

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int = 2048,
                 bottleneck_channels: int = 256, num_layers: int = 3, use_bn: bool = False,
                 norm_last_layer: bool = True, init_cfg=None) -> None:
        super().__init__(init_cfg)
        self.mlp = _mlp(in_channels, hidden_channels, bottleneck_channels, num_layers,
                        use_bn)
        self.last_layer = WeightNormLinear(bottleneck_channels, out_channels,
                                           fix_norm=norm_last_layer)

    def init_weights(self) -> None:
        super().init_weights()
        if self.init_cfg is None:
            for module in self.mlp.modules():
                if isinstance(module, nn.Linear):
                    trunc_normal_(module.weight, std=.02)
                    nn.init.zeros_(module.bias)

    def bottleneck(self, x: Tensor) -> Tensor:
        """The bottleneck embedding (before the L2 norm) of ``[..., C]`` features."""
        shape = x.shape
        # Flatten leading dimensions: BatchNorm1d wants [N, C] (iBOT passes tokens).
        return self.mlp(x.reshape(-1, shape[-1])).reshape(*shape[:-1], -1)

    def forward(self, inputs: Tuple[Tensor]) -> Tuple[Tensor, Tensor]:
        """Prototype scores of the backbone output, and the bottleneck they come from.

        Args:
            inputs (tuple[Tensor]): The backbone's outputs; the last one is used,
                ``[B, C]`` (or ``[B, L, C]`` tokens).

        Returns:
            tuple[Tensor, Tensor]: ``([B, out_channels], [B, bottleneck_channels])`` (or
            per token). The last element, the bottleneck, is the embedding HIRL reads of
            a neck (the reference's for DINO); the loss uses the first.
        """
        z = self.bottleneck(inputs[-1])
        return self.last_layer(F.normalize(z, dim=-1)), z


@MODELS.register_module()
class iBOTNeck(DINONeck):
    """The DINO head on all tokens: [CLS] scores and patch scores.

    Args:
        patch_out_channels (int): Number of patch prototypes (8192 for ViT-B/16).
        shared_head (bool): Score patches with the [CLS] token's last layer
            (``out_channels`` must then equal ``patch_out_channels``). Defaults to True.
        **kwargs: Those of :class:`DINONeck`.
    """

    def __init__(self, patch_out_channels: int, shared_head: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        if shared_head and patch_out_channels != kwargs['out_channels']:
            raise ValueError(f'A shared head scores [CLS] and patches with one layer: '
                             f'out_channels ({kwargs["out_channels"]}) must equal '
                             f'patch_out_channels ({patch_out_channels}), or set '
                             'shared_head=False.')
        self.shared_head = shared_head
        # A shared layer is not registered twice (its weights would be saved twice).
        self.patch_last_layer = None if shared_head else WeightNormLinear(
            kwargs.get('bottleneck_channels', 256), patch_out_channels,
            fix_norm=kwargs.get('norm_last_layer', True))

    def forward(self, inputs: Tuple[Tensor], with_patches: bool = True
                ) -> Tuple[Tensor, ...]:
        """[CLS] and patch prototype scores of a ViT's raw token output.

        Args:
            inputs (tuple[Tensor]): The backbone's outputs; the last one, ``[B, 1 + N, C]``
                tokens ([CLS] first; ``out_type='raw'``), is used.
            with_patches (bool): Also score the patch tokens (False for local crops,
                whose patches no loss term uses).

        Returns:
            tuple[Tensor]: ``([B, out_channels], [B, N, patch_out_channels],
            [B, bottleneck_channels])``, without the second with ``with_patches=False``.
            The last, the [CLS] token's bottleneck, is HIRL's embedding (the reference's).
        """
        tokens = inputs[-1]
        if tokens.dim() != 3:
            raise ValueError(f'iBOTNeck needs the ViT\'s tokens [B, 1 + N, C], got shape '
                             f"{tuple(tokens.shape)}; set out_type='raw' in the backbone.")
        if not with_patches:
            tokens = tokens[:, :1]
        bottleneck = self.bottleneck(tokens)
        z = F.normalize(bottleneck, dim=-1)
        cls_scores = self.last_layer(z[:, 0])
        if not with_patches:
            return cls_scores, bottleneck[:, 0]
        patch_layer = self.last_layer if self.patch_last_layer is None \
            else self.patch_last_layer
        return cls_scores, patch_layer(z[:, 1:]), bottleneck[:, 0]
