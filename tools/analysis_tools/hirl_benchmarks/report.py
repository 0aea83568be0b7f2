"""Table formatting shared by the HIRL benchmark's sections."""
import statistics
from typing import Dict

# Which HIRL embedding a width stands for in the default comparison.
EMBEDDING_NAMES = {128: "neck (MoCo v2 projector), embedding='neck'",
                   2048: "backbone (pooled ResNet-50), embedding='backbone'"}
# Column titles matching :func:`time_memory_cells`.
TIME_MEMORY_HEADER = f'{"time (median)":>14} {"min time":>10} {"peak memory":>14}'


def mib(num_bytes: float) -> str:
    """``num_bytes`` as MiB with one decimal, e.g. ``'1,024.0 MiB'``."""
    return f'{num_bytes / 2**20:,.1f} MiB'


def embedding_name(dim: int) -> str:
    """The HIRL embedding that width ``dim`` stands for, or ``'custom width'``."""
    return EMBEDDING_NAMES.get(dim, 'custom width')


def memory_description(device: str) -> str:
    """What the peak memory column measures on ``device`` (``'cpu'`` or ``'cuda'``)."""
    return ('peak CUDA memory allocated above baseline' if device == 'cuda' else
            'peak RSS increase over baseline')


def memory_is_upper_bound(result: Dict) -> bool:
    """Whether a worker's peak memory may include an earlier transient peak (> 5 %)."""
    return result['slack_bytes'] > 0.05 * max(result['peak_bytes'], 1)


def time_memory_cells(result: Dict) -> str:
    """A worker's median time, min time and peak memory, under :data:`TIME_MEMORY_HEADER`."""
    return (f'{statistics.median(result["times"]) * 1e3:>11.1f} ms '
            f'{min(result["times"]) * 1e3:>7.1f} ms {mib(result["peak_bytes"]):>14}')


def median_time_ratio(result: Dict, baseline: Dict) -> float:
    """Median time of ``result`` over the median time of ``baseline``."""
    return statistics.median(result['times']) / statistics.median(baseline['times'])


def print_header(header: str, extra_rule: int) -> None:
    """Print a table header and a rule ``extra_rule`` characters longer than it."""
    print(header)
    print('-' * (len(header) + extra_rule))
