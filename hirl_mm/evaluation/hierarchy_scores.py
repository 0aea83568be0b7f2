"""Score HIRL's learned levels against a data set's label levels, and a labelled copy of it.

Shared by the monitor hook (:class:`hirl_mm.engine.hooks.HierarchyMonitorHook`) and the
hierarchy picture (tools/analysis_tools/visualize_hierarchy.py).
"""
import copy
from typing import Dict, List, Mapping, Optional, Sequence

from torch import Tensor

from .functional import normalized_mutual_info, purity
from .label_hierarchy import LabelLevel

__all__ = ['learned_level_scores', 'labelled_dataset_cfg']


def learned_level_scores(im2cluster: Sequence[Tensor],
                         label_levels: Mapping[str, LabelLevel]
                         ) -> List[Dict[str, Dict[str, float]]]:
    """NMI and purity of every learned level against every label level.

    Args:
        im2cluster (Sequence[Tensor]): ``[N]`` cluster of every image per learned level,
            finest first, in data-set order.
        label_levels (Mapping[str, LabelLevel]): The same images' labels per level.

    Returns:
        list[dict]: Per learned level, ``{label level: {'nmi': x, 'purity': y}}``.
    """
    rows = []
    for assign in im2cluster:
        assign = assign.detach().cpu().numpy()
        rows.append({name: dict(nmi=normalized_mutual_info(level.labels.numpy(), assign),
                                purity=purity(level.labels.numpy(), assign))
                     for name, level in label_levels.items()})
    return rows


def labelled_dataset_cfg(dataset_cfg: dict, pipeline: Optional[List[dict]] = None) -> dict:
    """A copy of a (training) data set config that reads labels, with ``pipeline``.

    Self-supervised configs often read a folder without labels (``CustomDataset(
    with_label=False)``); the copy sets ``with_label=True`` so that the folder names are
    the classes. In a wrapper (``RepeatDataset`` ...) the inner data set is changed, so the
    samples keep the order the clustering hook extracts them in.

    Args:
        dataset_cfg (dict): The data set config.
        pipeline (list[dict], optional): Replaces its (innermost) pipeline.

    Returns:
        dict: The new config.
    """
    cfg = copy.deepcopy(dict(dataset_cfg))
    if 'dataset' in cfg and 'pipeline' not in cfg:
        cfg['dataset'] = labelled_dataset_cfg(cfg['dataset'], pipeline)
        return cfg
    if cfg.get('with_label') is False:
        cfg['with_label'] = True
    if pipeline is not None:
        cfg['pipeline'] = copy.deepcopy(list(pipeline))
    return cfg
