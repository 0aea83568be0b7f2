"""One rank of the sharded k-means test (run by torch.distributed.run, gloo on CPU).

Every rank builds the same synthetic data, keeps only its shard (an uneven, permuted
share, as a sampler gives), runs the sharded back end on several cases and saves what it
holds, plus the largest floating-point tensor any op of the back end produced.
"""
import sys
from pathlib import Path

import torch
import torch.distributed as torch_dist
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from hirl_mm.clustering import HierarchicalKMeans
from hirl_mm.clustering.kmeans_distributed import sharded_kmeans
from hirl_mm.registry import CLUSTERERS

N, DIM, KS = 203, 8, [12, 5, 2]  # 203 is divisible by neither 2 nor 3


class FloatAllocations(TorchDispatchMode):
    """Records the largest floating-point tensor (elements) that any op outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for item in tree_flatten(out)[0]:
            if isinstance(item, torch.Tensor) and item.is_floating_point():
                self.max_numel = max(self.max_numel, item.numel())
        return out


def data(kind: str) -> torch.Tensor:
    """The whole data set (built identically on every rank; only a shard is passed on)."""
    gen = torch.Generator().manual_seed(0)
    if kind == 'duplicates':  # 4 distinct points + 3 outliers: random inits collide
        base = F.normalize(torch.randn(7, DIM, generator=gen), dim=1)
        return base[torch.cat([torch.arange(4).repeat_interleave(50), torch.arange(4, 7)])]
    return F.normalize(torch.randn(N, DIM, generator=gen), dim=1)


def main() -> None:
    out_dir = Path(sys.argv[1])
    torch_dist.init_process_group('gloo')
    rank, world = torch_dist.get_rank(), torch_dist.get_world_size()
    # An uneven, permuted share of the samples, as a sampler hands them out.
    order = torch.randperm(N, generator=torch.Generator().manual_seed(1))
    idx = order[rank::world]
    full = data('random')
    shard = full[idx].clone()
    del full
    saved = dict(idx=idx, shard_rows=int(idx.numel()))

    kwargs = dict(num_clusters=KS, backend='torch', num_iters=8, num_redo=3, seed=3,
                  distributed=True)
    recorder = FloatAllocations()
    with recorder:
        result = HierarchicalKMeans(**kwargs).cluster_shard(shard, idx, N)
        subsampled = HierarchicalKMeans(**kwargs, max_points_per_centroid=10).cluster_shard(
            shard, idx, N)
    saved.update(result=result, subsampled=subsampled, max_float_numel=recorder.max_numel)

    # Restarts: run r of num_redo=j is run r of num_redo=3 (same random draws).
    saved['restarts'] = [sharded_kmeans(shard, idx, N, 12, 4, j, 7) for j in (1, 2, 3)]

    dup = data('duplicates')
    dup_idx = torch.arange(dup.shape[0])[rank::world]
    saved['duplicates'] = sharded_kmeans(dup[dup_idx], dup_idx, dup.shape[0], 6, 10, 2, 0)
    saved['dup_idx'] = dup_idx

    # Warm start, then a "resume": a fresh clusterer continues from saved prototypes.
    warm_cfg = dict(type='HierarchicalKMeans', **kwargs, warm_start=True)
    warm = CLUSTERERS.build(warm_cfg)
    round2 = warm.cluster_shard(shard, idx, N, previous=result)
    path = out_dir / 'round1.pth'
    if rank == 0:
        torch.save(result, path)
    torch_dist.barrier()
    resumed = CLUSTERERS.build(warm_cfg).cluster_shard(
        shard, idx, N, previous=torch.load(path, weights_only=False))
    saved.update(round2=round2, resumed_round2=resumed)
    saved['half'] = HierarchicalKMeans(**kwargs).cluster_shard(shard.half(), idx, N)
    torch.save(saved, out_dir / f'rank{rank}.pth')
    torch_dist.destroy_process_group()


if __name__ == '__main__':
    main()
