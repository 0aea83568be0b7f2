"""Section ``heads``: forward + backward of the semantic loss including the semantic heads.

``SemanticPathHead`` holds one projection MLP per level; each ``--embedding-dims`` width
``D`` (128: MoCo v2's projector output, ``embedding='neck'``; 2048: pooled ResNet-50,
``embedding='backbone'``) is measured in a fresh subprocess (see :mod:`.measure`).
"""
import argparse
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from .measure import LossCase, run_variant
from .report import TIME_MEMORY_HEADER, embedding_name, median_time_ratio, \
    memory_description, memory_is_upper_bound, mib, print_header, time_memory_cells
from .synthetic import random_hierarchy, random_paths

HeadInputs = Tuple[nn.Module, Tensor, List[Tensor], List[Tensor], Tensor]


def make_head_inputs(num_images: int, num_neg_path: int, num_clusters: Sequence[int],
                     dim: int, num_mlp_layer: int, device: torch.device,
                     seed: int) -> HeadInputs:
    """Semantic heads in training mode, a random embedding batch and a random hierarchy.

    Returns:
        tuple: ``(head, embedding, centroids, parents, pos_paths)``; ``embedding`` is
        ``[N, D]`` and requires grad (in training it comes from the neck or backbone).
    """
    from hirl_mm.models.heads import SemanticPathHead
    torch.manual_seed(seed)
    head = SemanticPathHead(in_channels=dim, num_levels=len(num_clusters),
                            num_neg_path=num_neg_path,
                            num_mlp_layer=num_mlp_layer).to(device).train()
    centroids, parents = random_hierarchy(num_clusters, dim, device)
    embedding = torch.randn(num_images, dim, device=device).requires_grad_()
    pos_paths = random_paths(num_images, num_clusters[0], parents, device)
    return head, embedding, centroids, parents, pos_paths


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters of ``module`` (BN running stats are buffers)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def heads_case(num_mlp_layer: int, seed: int, device: torch.device) -> LossCase:
    """The :class:`LossCase` of the semantic loss through the heads."""

    def make_inputs(n: int, p: int, ks: Sequence[int], d: int) -> HeadInputs:
        return make_head_inputs(n, p, ks, d, num_mlp_layer, device, seed)

    def step(inputs: HeadInputs) -> Tensor:
        head, embedding, centroids, parents, pos_paths = inputs
        head.zero_grad(set_to_none=True)
        embedding.grad = None
        loss = head.loss(embedding, pos_paths, centroids, parents)['loss_semantic']
        loss.backward()
        return loss

    def grads(inputs: HeadInputs) -> List[Tensor]:
        return [inputs[1].grad] + [p.grad for p in inputs[0].parameters()]

    return LossCase(make_inputs, step, grads,
                    num_params=lambda inputs: count_parameters(inputs[0]))


def benchmark_heads(args: argparse.Namespace) -> Dict[int, Dict]:
    """Semantic loss + semantic heads, forward + backward, per embedding width; prints a
    table.

    Returns:
        Dict[int, Dict]: The worker's measurements per width ``D``.
    """
    n, p, ks, dims = args.num_images, args.num_neg_path, args.num_clusters, args.embedding_dims
    print(f'== Semantic loss INCLUDING the semantic heads, forward + backward on '
          f'{args.device} ==')
    print(f'{len(ks)} x SemanticPathHead MLP (num_mlp_layer={args.num_mlp_layer} Linear '
          f'layers of width D), N={n} images, P={p} negative paths, K={ks}, float32; '
          f'D = the width of the embedding the heads read and the centroids live in')
    results = {d: run_variant('heads', args, dim=d) for d in dims}
    print(f'memory: {memory_description(args.device)} (activations + parameter gradients of '
          f'the first call; the parameters and centroids are baseline); time: median of '
          f'{args.repeats} runs after {args.warmup} warm-up run(s)')
    print_header(f'{"D":>5} {"head params":>12} {"(float32)":>12} {TIME_MEMORY_HEADER}  '
                 f'embedding', 40)
    for d, r in results.items():
        note = ' [memory: upper bound]' if memory_is_upper_bound(r) else ''
        print(f'{d:>5} {r["num_params"]:>12,} {mib(r["num_params"] * 4):>12} '
              f'{time_memory_cells(r)}  {embedding_name(d)}{note}')
    if len(dims) >= 2:
        lo, hi = min(dims), max(dims)
        a, b = results[lo], results[hi]
        print(f'ratio D={hi} / D={lo}: params '
              f'{b["num_params"] / max(a["num_params"], 1):.1f}x, time '
              f'{median_time_ratio(b, a):.1f}x, '
              f'peak memory {b["peak_bytes"] / max(a["peak_bytes"], 1):.1f}x')
    return results
