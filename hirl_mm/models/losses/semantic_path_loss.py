"""Semantic path discrimination loss of HIRL.

For an image ``i`` with per-level semantic embeddings ``z_l`` and a path
``p = (c_0, ..., c_{L-1})``, the path similarity is

    s(i, p) = prod_l (1 + cos(z_l, centroids[l][c_l])) / 2        in [0, 1]

and the loss is ``mean_i (loss_pos(i) + loss_neg(i)) / 2`` with
``loss_pos(i) = -log(s(i, path(i)) + eps)`` and ``loss_neg(i)`` the mean over *true*
negative paths of ``-log(1 - s(i, p) + eps)``.

The naive way gathers the centroids of every negative path into an ``[N, P, L, D]`` tensor.
Here the cosine of ``z_l`` with *every* centroid of level ``l`` is one ``[N, K_l]`` matrix
product, and positive and negative similarities are gathers from it: memory is
``O(N * sum_l K_l)`` instead of ``O(N * P * L * D)``. The backward pass reads only the
gathered centroid rows (see :class:`_GatheredCosine`).
"""
from contextlib import nullcontext
from typing import ContextManager, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from hirl_mm.registry import MODELS
from ..utils.semantic_paths import _is_integer_tensor, check_index_ranges

__all__ = ['semantic_path_loss', 'SemanticPathLoss']


def _validate(embeddings: Sequence[Tensor], centroids: Sequence[Tensor], pos_paths: Tensor,
              neg_paths: Tensor) -> None:
    """Check shapes, dtypes and index ranges of :func:`semantic_path_loss`'s inputs."""
    num_levels = len(embeddings)
    if num_levels == 0:
        raise ValueError('embeddings must hold at least one level')
    if len(centroids) != num_levels:
        raise ValueError(f'got {num_levels} levels of embeddings but {len(centroids)} '
                         f'levels of centroids')
    num_images = None
    for l, (z, c) in enumerate(zip(embeddings, centroids)):
        if z.dim() != 2:
            raise ValueError(f'embeddings[{l}] must be [N, D], got shape {tuple(z.shape)}')
        if c.dim() != 2:
            raise ValueError(f'centroids[{l}] must be [K, D], got shape {tuple(c.shape)}')
        if z.shape[1] != c.shape[1]:
            raise ValueError(f'level {l}: embedding dim {z.shape[1]} != centroid dim '
                             f'{c.shape[1]}')
        if c.shape[0] == 0:
            raise ValueError(f'centroids[{l}] is empty')
        if num_images is None:
            num_images = z.shape[0]
        elif z.shape[0] != num_images:
            raise ValueError(f'embeddings[{l}] has {z.shape[0]} rows, embeddings[0] has '
                             f'{num_images}')
    if num_images == 0:
        raise ValueError('empty batch: embeddings have 0 rows')
    for name, paths, dims in (('pos_paths', pos_paths, 2), ('neg_paths', neg_paths, 3)):
        if not isinstance(paths, Tensor) or not _is_integer_tensor(paths):
            raise ValueError(f'{name} must be an integer tensor, got '
                             f'{getattr(paths, "dtype", type(paths))}')
        if paths.dim() != dims:
            raise ValueError(f'{name} must have {dims} dims, got shape {tuple(paths.shape)}')
        if paths.shape[0] != num_images:
            raise ValueError(f'{name} has {paths.shape[0]} rows but the batch has '
                             f'{num_images} images')
        if paths.shape[-1] != num_levels:
            raise ValueError(f'{name} has {paths.shape[-1]} levels, expected {num_levels}')
    check_index_ranges([(f'{name}[..., {l}]', paths[..., l], c.shape[0])
                        for name, paths in (('pos_paths', pos_paths), ('neg_paths', neg_paths))
                        for l, c in enumerate(centroids)])


class _GatheredCosine(torch.autograd.Function):
    """``out[n, m] = <z[n], c[idx[n, m]]>`` (the cosine, for unit-norm inputs).

    Forward: one ``[N, K]`` matrix product, then a gather. Backward w.r.t. ``z`` reads only
    the gathered centroid rows (``embedding_bag`` with per-sample weights) instead of
    multiplying the mostly-zero ``[N, K]`` gradient with all of ``c``: same result, no
    ``[N, M, D]`` tensor, several times cheaper on CPU.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, z: Tensor, c: Tensor, idx: Tensor) -> Tensor:
        ctx.save_for_backward(z, c, idx)
        return (z @ c.t()).gather(1, idx)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor):
        z, c, idx = ctx.saved_tensors
        grad_z = grad_c = None
        grad = grad.contiguous()
        if ctx.needs_input_grad[0]:
            # grad_z[n] = sum_m grad[n, m] * c[idx[n, m]]
            grad_z = F.embedding_bag(idx, c, per_sample_weights=grad, mode='sum')
        if ctx.needs_input_grad[1]:
            # Centroids rarely require grad; a dense [N, K] scatter then a product is fine.
            dense = torch.zeros(z.shape[0], c.shape[0], dtype=grad.dtype, device=grad.device)
            grad_c = dense.scatter_add_(1, idx, grad).t() @ z
        return grad_z, grad_c, None


def _no_autocast(device: torch.device) -> ContextManager:
    """A context disabling autocast on ``device`` (a no-op where autocast is unsupported)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return nullcontext()


def semantic_path_loss(embeddings: Sequence[Tensor],
                       centroids: Sequence[Tensor],
                       pos_paths: Tensor,
                       neg_paths: Tensor,
                       eps: float = 1e-6) -> Tensor:
    """Semantic path discrimination loss.

    Computation runs in float32 (float64 if any input is float64) with autocast disabled:
    ``1 - s + eps`` with ``eps = 1e-6`` is not representable in half precision.

    Args:
        embeddings (Sequence[Tensor]): ``L`` tensors ``[N, D]``, the L2-normalised
            semantic embeddings ``z_l``.
        centroids (Sequence[Tensor]): ``L`` tensors ``[K_l, D]``, L2-normalised
            centroids of each level. Usually buffers without grad; gradients flow into
            them if they require grad.
        pos_paths (Tensor): ``[N, L]`` integer tensor, each image's own path.
        neg_paths (Tensor): ``[N, P, L]`` integer tensor, explicit negative paths. Those
            equal to the image's own path at every level are masked out.
        eps (float): Numerical stabiliser inside the logarithms. Defaults to 1e-6.

    Returns:
        Tensor: The scalar loss.

    Raises:
        ValueError: On inconsistent numbers of levels, shapes, dtypes, an empty batch or
            indices outside ``[0, K_l)``.
    """
    _validate(embeddings, centroids, pos_paths, neg_paths)
    device = embeddings[0].device
    pos_paths = pos_paths.to(device=device, dtype=torch.long)
    neg_paths = neg_paths.to(device=device, dtype=torch.long)
    compute_dtype = (torch.float64 if any(t.dtype == torch.float64
                                          for t in (*embeddings, *centroids))
                     else torch.float32)
    pos_sim = None  # [N], s(i, path(i)) accumulated over levels
    neg_sim = None  # [N, P], s(i, p) accumulated over levels
    with _no_autocast(device):
        for l, (z, c) in enumerate(zip(embeddings, centroids)):
            z = z.to(compute_dtype)
            c = c.to(device=device, dtype=compute_dtype)
            # One [N, K_l] product gives cos(z_l, every centroid) (inputs are normalised);
            # positive (column 0) and negatives are gathered from it in one go.
            idx = torch.cat([pos_paths[:, l:l + 1], neg_paths[:, :, l]], dim=1)
            cos = _GatheredCosine.apply(z, c, idx)
            # Clamp: rounding can push a dot product of unit vectors past +-1, and
            # 1 - s + eps must stay positive.
            level_sim = ((1 + cos) / 2).clamp(0, 1)
            level_pos, level_neg = level_sim[:, 0], level_sim[:, 1:]
            pos_sim = level_pos if pos_sim is None else pos_sim * level_pos
            neg_sim = level_neg if neg_sim is None else neg_sim * level_neg
        loss_pos = -torch.log(pos_sim + eps)
        # A drawn path is a true negative unless it equals the positive path everywhere.
        true_neg = (neg_paths != pos_paths.unsqueeze(1)).any(dim=-1).to(compute_dtype)
        neg_terms = -torch.log(1 - neg_sim + eps)
        loss_neg = (neg_terms * true_neg).sum(dim=1) / (true_neg.sum(dim=1) + eps)
        return ((loss_pos + loss_neg) / 2).mean()


@MODELS.register_module()
class SemanticPathLoss(nn.Module):
    """Module wrapper of :func:`semantic_path_loss`.

    Args:
        loss_weight (float): Multiplier of the loss. Defaults to 1.0.
        eps (float): Numerical stabiliser inside the logarithms. Defaults to 1e-6.
    """

    def __init__(self, loss_weight: float = 1.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.eps = eps

    def forward(self, embeddings: Sequence[Tensor], centroids: Sequence[Tensor],
                pos_paths: Tensor, neg_paths: Tensor) -> Tensor:
        """Compute the weighted loss.

        Args:
            embeddings (Sequence[Tensor]): ``L`` normalised embeddings ``[N, D]``.
            centroids (Sequence[Tensor]): ``L`` normalised centroids ``[K_l, D]``.
            pos_paths (Tensor): ``[N, L]`` positive paths.
            neg_paths (Tensor): ``[N, P, L]`` negative paths.

        Returns:
            Tensor: ``loss_weight`` times the scalar loss.
        """
        return self.loss_weight * semantic_path_loss(embeddings, centroids, pos_paths,
                                                     neg_paths, eps=self.eps)

    def extra_repr(self) -> str:
        """Arguments shown by ``repr``."""
        return f'loss_weight={self.loss_weight}, eps={self.eps}'
