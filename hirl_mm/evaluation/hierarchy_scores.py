"""Score HIRL's learned levels against a data set's label levels, and a labelled copy of it.

Shared by the monitor hook (:class:`hirl_mm.engine.hooks.HierarchyMonitorHook`), the report
(tools/analysis_tools/hirl_report.py) and the hierarchy picture
(tools/analysis_tools/visualize_hierarchy.py).
"""
import copy
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from torch import Tensor

from .functional import normalized_mutual_info, purity
from .label_hierarchy import LabelLevel

__all__ = ['learned_level_scores', 'labelled_dataset_cfg', 'build_training_images_loader',
           'tool_eval_pipeline']


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


def _is_flat_folder_error(error: Exception) -> bool:
    """mmpretrain's ``CustomDataset(with_label=True)`` on a folder without class
    sub-folders: ``RuntimeError('Found 0 files in subfolders of: ...')``."""
    return isinstance(error, RuntimeError) and 'Found 0 files in subfolders' in str(error)


def build_training_images_loader(dataset_cfg: dict, pipeline: Optional[List[dict]],
                                 batch_size: int, seed: Optional[int] = None
                                 ) -> Tuple[object, bool]:
    """The training images, in the order the clustering hook extracts them, with their
    labels where the data set has any.

    The data set is read as :func:`labelled_dataset_cfg` makes it (class sub-folders become
    the labels). A folder without class sub-folders (pre-trained with
    ``CustomDataset(with_label=False)``) has no labels: it is then read as configured.

    Args:
        dataset_cfg (dict): The training data set config.
        pipeline (list[dict], optional): Replaces its (innermost) pipeline.
        batch_size (int): Images per batch.
        seed (int, optional): Seed of the loader's workers.

    Returns:
        tuple: ``(loader, labelled)``; ``labelled`` is False for a flat folder read without
        labels (its samples have no ``gt_label``).
    """
    from hirl_mm.utils.feature_extraction import build_extraction_loader
    labelled_cfg = labelled_dataset_cfg(dataset_cfg, pipeline)
    try:
        return build_extraction_loader(labelled_cfg, batch_size, seed=seed), True
    except RuntimeError as error:
        unlabelled_cfg = _with_pipeline(dataset_cfg, pipeline)
        if not _is_flat_folder_error(error) or unlabelled_cfg == labelled_cfg:
            raise
    return build_extraction_loader(unlabelled_cfg, batch_size, seed=seed), False


def _with_pipeline(dataset_cfg: dict, pipeline: Optional[List[dict]]) -> dict:
    """A copy of ``dataset_cfg`` whose (innermost) pipeline is ``pipeline``."""
    cfg = copy.deepcopy(dict(dataset_cfg))
    if 'dataset' in cfg and 'pipeline' not in cfg:
        cfg['dataset'] = _with_pipeline(cfg['dataset'], pipeline)
    elif pipeline is not None:
        cfg['pipeline'] = copy.deepcopy(list(pipeline))
    return cfg


def tool_eval_pipeline(cfg) -> List[dict]:
    """The pipeline the analysis tools read the training images with: ``report.eval_pipeline``,
    else the config's test / val pipeline, else the clustering hook's ``extract_pipeline``,
    else the hook's default (the ImageNet eval transform: resize 256, center-crop 224)."""
    from hirl_mm.engine.hooks.hierarchical_clustering_hook import IMAGENET_EXTRACT_PIPELINE
    from hirl_mm.engine.hooks.pipeline_checks import config_eval_pipeline
    report = cfg.get('report') or {}
    if report.get('eval_pipeline'):
        return list(report['eval_pipeline'])
    found = config_eval_pipeline(cfg)
    if found is not None:
        return found[0]
    for hook in cfg.get('custom_hooks') or []:
        if hook.get('type') == 'HierarchicalClusteringHook' and hook.get('extract_pipeline'):
            return list(hook['extract_pipeline'])
    return copy.deepcopy(list(IMAGENET_EXTRACT_PIPELINE))
