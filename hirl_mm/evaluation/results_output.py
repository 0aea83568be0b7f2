"""How the frozen-feature protocols name data sets and write their results."""
import json
import os
import os.path as osp
from typing import Any, List, Optional, Sequence

__all__ = ['dataset_name', 'describe_dataset', 'default_output_file', 'dump_json',
           'format_table']


def dataset_name(dataset_cfg: dict, role: str) -> str:
    """The data set's ``split`` if it names one (``'train'``, ``'val'``), else ``role``.

    Used in cache file names, so two protocols evaluating the same split share the cache.

    Args:
        dataset_cfg (dict): The data set config.
        role (str): What the protocol uses it as, e.g. ``'memory'`` or ``'query'``.

    Returns:
        str: The name.
    """
    split = dataset_cfg.get('split') if hasattr(dataset_cfg, 'get') else None
    return str(split) if split else role


def describe_dataset(dataset_cfg: dict) -> str:
    """A short name for a data set config: its type and split (or annotation file, or
    data root), e.g. ``'ImageNet split=val'``."""
    parts = [str(dataset_cfg.get('type', 'dataset'))]
    for key in ('split', 'ann_file', 'data_root'):
        if dataset_cfg.get(key):
            parts.append(f'{key}={dataset_cfg[key]}')
            break
    return ' '.join(parts)


def default_output_file(checkpoint: str, protocol: str, work_dir: Optional[str] = None) -> str:
    """``<work_dir or checkpoint's folder>/<checkpoint name>_<protocol>.json``.

    Args:
        checkpoint (str): The evaluated checkpoint (path or URL; a URL's results go to
            the current folder without ``work_dir``).
        protocol (str): E.g. ``'knn'`` or ``'clustering'``.
        work_dir (str, optional): The folder to write to.

    Returns:
        str: The path.
    """
    stem = osp.splitext(osp.basename(checkpoint.rstrip('/')))[0] or 'checkpoint'
    if work_dir:
        folder = work_dir
    elif '://' in checkpoint:
        folder = '.'
    else:
        folder = osp.dirname(osp.abspath(checkpoint))
    return osp.join(folder, f'{stem}_{protocol}.json')


def dump_json(results: dict, out_file: str) -> str:
    """Write ``results`` as indented JSON (creating the folder); returns the path."""
    folder = osp.dirname(osp.abspath(out_file))
    os.makedirs(folder, exist_ok=True)
    with open(out_file, 'w') as f:
        json.dump(results, f, indent=2)
        f.write('\n')
    return out_file


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
                 float_format: str = '{:.4f}') -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned.

    Args:
        headers (Sequence[str]): Column names.
        rows (Sequence[Sequence]): Cells; floats are formatted with ``float_format``,
            ``None`` is shown as ``-``.
        float_format (str): Format of float cells. Defaults to 4 decimals.

    Returns:
        str: Header, a rule and one line per row.
    """
    def cell(value: Any) -> str:
        if value is None:
            return '-'
        if isinstance(value, float):
            return float_format.format(value)
        return str(value)

    table = [list(map(str, headers))] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]

    def render(line: List[str]) -> str:
        return '  '.join(text.ljust(w) if i == 0 else text.rjust(w)
                         for i, (text, w) in enumerate(zip(line, widths))).rstrip()

    rule = '  '.join('-' * w for w in widths)
    return '\n'.join([render(table[0]), rule] + [render(line) for line in table[1:]])
