"""Section ``loss``: ``hirl_mm``'s semantic path loss against a naive formulation.

Ours computes one ``[N, K_l]`` matrix product per level, then gathers; the naive one
gathers the centroids of every negative path into an ``[N, P, L, D]`` tensor.
"""
import argparse
from typing import Callable, List, Sequence, Tuple

import torch
from torch import Tensor

from .measure import LossCase, run_variant
from .report import TIME_MEMORY_HEADER, median_time_ratio, memory_description, \
    memory_is_upper_bound, mib, print_header, time_memory_cells
from .synthetic import random_hierarchy, random_paths, random_unit_rows

LossInputs = Tuple[List[Tensor], List[Tensor], Tensor, Tensor]


def naive_semantic_path_loss(embeddings: Sequence[Tensor], centroids: Sequence[Tensor],
                             pos_paths: Tensor, neg_paths: Tensor,
                             eps: float = 1e-6) -> Tensor:
    """The formula computed the naive way, materialising ``[N, P, L, D]`` centroids.

    Args:
        embeddings (Sequence[Tensor]): ``L`` normalised ``[N, D]`` embeddings.
        centroids (Sequence[Tensor]): ``L`` normalised ``[K_l, D]`` centroids.
        pos_paths (Tensor): ``[N, L]`` positive paths.
        neg_paths (Tensor): ``[N, P, L]`` negative paths.
        eps (float): Stabiliser inside the logarithms.

    Returns:
        Tensor: The scalar loss.
    """
    num_levels = len(centroids)
    z = torch.stack(list(embeddings), dim=1)  # [N, L, D]
    pos_c = torch.stack([centroids[l][pos_paths[:, l]] for l in range(num_levels)], dim=1)
    neg_c = torch.stack([centroids[l][neg_paths[:, :, l]] for l in range(num_levels)],
                        dim=2)  # [N, P, L, D]
    pos_sim = ((1 + (z * pos_c).sum(-1)) / 2).prod(-1)  # [N]
    neg_sim = ((1 + (z.unsqueeze(1) * neg_c).sum(-1)) / 2).prod(-1)  # [N, P]
    true_neg = (neg_paths != pos_paths.unsqueeze(1)).any(-1).to(z.dtype)
    loss_pos = -torch.log(pos_sim + eps)
    loss_neg = (-torch.log(1 - neg_sim + eps) * true_neg).sum(1) / (true_neg.sum(1) + eps)
    return ((loss_pos + loss_neg) / 2).mean()


def make_loss_inputs(num_images: int, num_neg_path: int, num_clusters: Sequence[int],
                     dim: int, device: torch.device, seed: int) -> LossInputs:
    """Random normalised embeddings / centroids, a random hierarchy and its paths.

    Centroids are filled and normalised in place so that building them leaves no transient
    peak above the resident size (which would hide the measured call's peak on CPU).

    Returns:
        tuple: ``(embeddings, centroids, pos_paths, neg_paths)``; embeddings require grad.
    """
    from hirl_mm.models.utils import sample_negative_paths
    torch.manual_seed(seed)
    centroids, parents = random_hierarchy(num_clusters, dim, device)
    embeddings = [random_unit_rows(num_images, dim, device).requires_grad_()
                  for _ in num_clusters]
    pos_paths = random_paths(num_images, num_clusters[0], parents, device)
    neg_paths = sample_negative_paths(num_images, num_neg_path, num_clusters[0], parents,
                                      device=device)
    return embeddings, centroids, pos_paths, neg_paths


def loss_case(variant: str, seed: int, device: torch.device) -> LossCase:
    """The :class:`LossCase` of ``'ours'`` or ``'naive'`` (no parameters to count)."""
    from hirl_mm.models.losses import semantic_path_loss
    fn: Callable = semantic_path_loss if variant == 'ours' else naive_semantic_path_loss

    def make_inputs(n: int, p: int, ks: Sequence[int], d: int) -> LossInputs:
        return make_loss_inputs(n, p, ks, d, device, seed)

    def step(inputs: LossInputs) -> Tensor:
        for e in inputs[0]:
            e.grad = None
        loss = fn(*inputs)
        loss.backward()
        return loss

    def grads(inputs: LossInputs) -> List[Tensor]:
        return [e.grad for e in inputs[0]]

    return LossCase(make_inputs, step, grads, num_params=lambda inputs: 0)


def benchmark_loss(args: argparse.Namespace) -> bool:
    """Benchmark ours vs naive and print a table.

    Returns:
        bool: Whether both targets were met.
    """
    n, p, ks, d = args.num_images, args.num_neg_path, args.num_clusters, args.dim
    gathered = n * p * len(ks) * d * 4
    print(f'== Semantic path loss, forward + backward on {args.device} ==')
    print(f'N={n} images, P={p} negative paths, K={ks}, D={d}, L={len(ks)}, float32; '
          f'the naive [N, P, L, D] gather alone is {mib(gathered)}')
    results = {v: run_variant(v, args) for v in ('ours', 'naive')}
    ours, naive = results['ours'], results['naive']
    header = f'{"variant":<8} {TIME_MEMORY_HEADER}  loss'
    print(f'memory: {memory_description(args.device)}; time: median of {args.repeats} runs '
          f'after {args.warmup} warm-up run(s)')
    print_header(header, 10)
    for name, r in results.items():
        note = ' (upper bound)' if memory_is_upper_bound(r) else ''
        print(f'{name:<8} {time_memory_cells(r)}  {r["loss"]:.6f}{note}')
    mem_ratio = naive['peak_bytes'] / max(ours['peak_bytes'], 1)
    time_ratio = median_time_ratio(naive, ours)
    mem_ok, time_ok = mem_ratio >= args.memory_target, time_ratio >= args.time_target
    print(f'memory ratio naive/ours: {mem_ratio:8.1f}x  (target >= {args.memory_target:g}x) '
          f'{"PASS" if mem_ok else "FAIL"}')
    print(f'time ratio   naive/ours: {time_ratio:8.1f}x  (target >= {args.time_target:g}x) '
          f'{"PASS" if time_ok else "FAIL"}')
    loss_diff = abs(ours['loss'] - naive['loss'])
    grad_diff = abs(ours['grad_norm'] - naive['grad_norm'])
    print(f'agreement: |loss diff| = {loss_diff:.2e}, |grad norm diff| = {grad_diff:.2e}')
    return mem_ok and time_ok
