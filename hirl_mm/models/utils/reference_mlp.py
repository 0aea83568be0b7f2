"""The HIRL reference's MLP (``hirl/layers/common.py``: ``MLP(D, [D] * n, batch_norm=True)``).

``num_linear`` Linear layers, all of width D; each but the last is followed by a norm and
ReLU and has no bias (the norm's shift replaces it). Used by the semantic path heads and by
the BEiT token projector.
"""
from typing import List

from mmcv.cnn import build_norm_layer
from torch import nn

__all__ = ['reference_mlp']


def reference_mlp(channels: int, num_linear: int,
                  norm_cfg: dict = dict(type='BN1d')) -> nn.Sequential:
    """``[Linear(bias=False), norm, ReLU] * (num_linear - 1) + [Linear]``, width ``channels``.

    Args:
        channels (int): Input, hidden and output width.
        num_linear (int): Number of ``Linear`` layers (>= 1).
        norm_cfg (dict): The norm after each hidden Linear (BatchNorm1d by default; SyncBN
            for multi-GPU training).

    Returns:
        nn.Sequential: The MLP.
    """
    layers: List[nn.Module] = []
    for _ in range(num_linear - 1):
        layers += [nn.Linear(channels, channels, bias=False),
                   build_norm_layer(norm_cfg, channels)[1], nn.ReLU(inplace=True)]
    layers.append(nn.Linear(channels, channels))
    return nn.Sequential(*layers)
