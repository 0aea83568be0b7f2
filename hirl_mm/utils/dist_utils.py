"""Distributed helpers built on mmengine's dist functions (which also work undistributed)."""
import torch
from mmengine import dist


def all_gather_rows(data: torch.Tensor) -> torch.Tensor:
    """Concatenate the rows of ``data`` from every rank, in rank order.

    Unlike ``mmengine.dist.all_gather``, ranks may hold different numbers of rows (e.g. the
    last shard of an unpadded sampler). Rows are only concatenated: callers carry explicit
    sample indices with their rows rather than relying on positions.

    Args:
        data (Tensor): ``[n_rank, ...]``; trailing dimensions must agree across ranks.

    Returns:
        Tensor: ``[sum of n_rank, ...]`` on ``data``'s device.
    """
    if dist.get_world_size() == 1:
        return data
    num_rows = torch.tensor([data.shape[0]], device=data.device)
    sizes = [int(n) for n in dist.all_gather(num_rows)]
    padded = data.new_zeros((max(sizes), *data.shape[1:]))
    padded[:data.shape[0]] = data
    chunks = dist.all_gather(padded)
    return torch.cat([chunk[:n] for chunk, n in zip(chunks, sizes)])
