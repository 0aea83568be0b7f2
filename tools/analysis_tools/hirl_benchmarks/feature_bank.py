"""Section ``bank``: bytes of the clustering feature bank every rank holds (computed).

For a data set of ``--bank-samples`` images (ImageNet-1k train by default), float32, per
width: ``N * D * 4``, not measured.
"""
import argparse
from typing import Dict

from .report import embedding_name, print_header

IMAGENET_1K_TRAIN_IMAGES = 1281167


def bank_bytes(num_samples: int, dim: int, bytes_per_value: int = 4) -> Dict[str, int]:
    """Bytes of the clustering feature bank on each rank on the gather path (computed).

    On the gather path (``HierarchicalKMeans(distributed=False)``, or one process)
    ``extract_embeddings`` all-gathers every rank's rows and places them by ``sample_idx``,
    so every rank holds the whole ``[N, D]`` bank (the sharded back end, the default with
    several processes, holds ``N / world_size`` rows per rank); while the gathered rows
    and the placed copy coexist the peak is about twice that (the rank's own
    ~N/world_size shard and the int64 sample indices come on top).

    Args:
        num_samples (int): Images ``N``.
        dim (int): Embedding width ``D``.
        bytes_per_value (int): 4 for float32.

    Returns:
        Dict[str, int]: ``bank`` (``N * D * bytes``) and ``peak`` (``2 * bank``).
    """
    bank = num_samples * dim * bytes_per_value
    return dict(bank=bank, peak=2 * bank)


def benchmark_bank(args: argparse.Namespace) -> Dict[int, Dict[str, int]]:
    """Print the feature bank's size per rank per embedding width (COMPUTED, not measured).

    Returns:
        Dict[int, Dict[str, int]]: :func:`bank_bytes` per width ``D``.
    """
    n = args.bank_samples
    what = ' (ImageNet-1k train)' if n == IMAGENET_1K_TRAIN_IMAGES else ''
    print(f'== Feature bank per rank for {n:,} images{what}, float32: COMPUTED as '
          f'N x D x 4 bytes, NOT measured ==')
    print('gather path (distributed=False or one process): every rank holds the whole bank '
          '(extract_embeddings all-gathers the rows; the sharded back end, the default with '
          'several processes, holds N/world_size rows per rank); peak '
          '~2x while the gathered rows and the placed copy coexist (place_by_index), plus '
          "the rank's own ~N/world_size shard and N int64 indices; GB = 1e9 bytes")
    print_header(f'{"D":>5} {"bank bytes":>16} {"bank":>10} {"peak (~2x)":>11}  embedding', 30)
    results = {}
    for d in args.embedding_dims:
        r = results[d] = bank_bytes(n, d)
        print(f'{d:>5} {r["bank"]:>16,} {r["bank"] / 1e9:>7.2f} GB {r["peak"] / 1e9:>8.2f} GB  '
              f'{embedding_name(d)}')
    return results
