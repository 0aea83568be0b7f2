"""Turn a backbone's output into one image embedding per sample."""
from typing import Sequence, Union

import torch
from torch import Tensor


def backbone_embedding(output: Union[Tensor, Sequence[Tensor]]) -> Tensor:
    """The image embedding HIRL clusters and projects, from a backbone output.

    The spec's embedding: for CNNs the globally average-pooled last stage (2048-d for a
    ResNet-50), for ViTs the [CLS] token. mmpretrain backbones return a tuple of stage
    outputs; the last one is used.

    Args:
        output (Tensor | Sequence[Tensor]): A backbone output: ``[N, C, H, W]`` feature
            maps (pooled), ``[N, L, C]`` tokens (the first, [CLS], is taken) or ``[N, C]``
            vectors (used as they are). A sequence (mmpretrain's multi-stage tuple, or a
            ViT's ``(patch_tokens, cls_token)``) contributes its last element.

    Returns:
        Tensor: ``[N, C]`` embeddings, not normalised.
    """
    while isinstance(output, (tuple, list)):
        if len(output) == 0:
            raise ValueError('The backbone returned an empty sequence; HIRL needs its '
                             'last stage output to build the image embedding.')
        output = output[-1]
    if not isinstance(output, Tensor):
        raise TypeError(f'Expected the backbone to output tensors, got {type(output)}.')
    if output.dim() == 4:
        return output.mean(dim=(2, 3))
    if output.dim() == 3:
        return output[:, 0]
    if output.dim() == 2:
        return output
    raise ValueError(f'Cannot build an image embedding from a backbone output of shape '
                     f'{tuple(output.shape)}; expected [N, C, H, W], [N, L, C] or [N, C].')


def normalized_embedding(output: Union[Tensor, Sequence[Tensor]]) -> Tensor:
    """:func:`backbone_embedding`, L2-normalised (the features HIRL clusters)."""
    return torch.nn.functional.normalize(backbone_embedding(output).float(), dim=1)
