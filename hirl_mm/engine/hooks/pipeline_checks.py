"""Checks HierarchicalClusteringHook runs before the first iteration: what would otherwise
only fail at the first clustering, after the whole warm-up (20 epochs on ImageNet)."""
import random
from contextlib import contextmanager
from typing import Any, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

__all__ = ['PipelineCheckError', 'config_eval_pipeline', 'probe_first_sample',
           'check_num_clusters', 'preserved_rng']

# Where a config keeps an evaluation pipeline, in the order they are tried.
_DATALOADER_KEYS = ('test_dataloader', 'val_dataloader')
_PIPELINE_KEYS = ('test_pipeline', 'val_pipeline', 'eval_pipeline')


class PipelineCheckError(ValueError):
    """A data pipeline or setting of a HIRL run cannot work; found before training."""


def _innermost_pipeline(dataset_cfg: Any) -> Optional[list]:
    """The pipeline of a dataset config, looking through wrappers (``dataset=...``)."""
    while isinstance(dataset_cfg, dict):
        if dataset_cfg.get('pipeline') is not None:
            return list(dataset_cfg['pipeline'])
        dataset_cfg = dataset_cfg.get('dataset')
    return None


def config_eval_pipeline(cfg: Any) -> Optional[Tuple[List[dict], str]]:
    """The evaluation (test / val) pipeline a config defines, if any.

    Args:
        cfg: The run's config (``runner.cfg``).

    Returns:
        tuple | None: ``(pipeline, where)``, e.g. ``(..., 'test_dataloader.dataset.pipeline')``;
        None when the config has none of ``test_dataloader``, ``val_dataloader``,
        ``test_pipeline``, ``val_pipeline``, ``eval_pipeline``.
    """
    for key in _DATALOADER_KEYS:
        loader = cfg.get(key)
        pipeline = _innermost_pipeline(loader.get('dataset')) if loader else None
        if pipeline:
            return pipeline, f'{key}.dataset.pipeline'
    for key in _PIPELINE_KEYS:
        pipeline = cfg.get(key)
        if isinstance(pipeline, (list, tuple)) and pipeline:
            return list(pipeline), key
    return None


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore Python's, numpy's and torch's (CPU) random states on exit, so probing a
    random pipeline does not change the training's draws."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


def _explain(error: Exception) -> str:
    if isinstance(error, KeyError) and error.args and error.args[0] == 'img_path':
        return (' The data set keeps its images in memory (its samples have no img_path), '
                'so a file-reading transform such as LoadImageFromFile cannot apply: drop '
                'it from the pipeline.')
    return ''


def probe_first_sample(dataset: Any, what: str, key: str) -> dict:
    """Run the first sample through a data set's pipeline and check it packs ``sample_idx``.

    Args:
        dataset: The built data set (its pipeline is the one checked).
        what (str): The pipeline, in words (for the messages).
        key (str): The config key to change (for the messages).

    Returns:
        dict: The packed sample.

    Raises:
        PipelineCheckError: If the pipeline fails on the sample, or its output carries no
            ``sample_idx``, naming ``key``.
    """
    if len(dataset) == 0:
        raise PipelineCheckError(f'The training set ({type(dataset).__name__}) is empty; '
                                 f'check train_dataloader.dataset (data_root, ann_file).')
    try:
        with preserved_rng():
            packed = dataset[0]
    except Exception as error:  # anything a transform raises: explained and re-raised
        raise PipelineCheckError(
            f'{what} fails on the first sample of the training set '
            f'({type(dataset).__name__}): {type(error).__name__}: {error}.'
            f'{_explain(error)} Set {key} to a pipeline that fits this data set.') from error
    samples = packed.get('data_samples') if isinstance(packed, dict) else None
    if samples is None:
        raise PipelineCheckError(
            f'{what} does not end with PackInputs (its output has no data_samples): add '
            f"dict(type='PackInputs') at the end of {key}.")
    for sample in samples if isinstance(samples, (list, tuple)) else [samples]:
        if getattr(sample, 'sample_idx', None) is None:
            raise PipelineCheckError(
                f'{what} packs no sample_idx, which HIRL needs to find each sample\'s '
                f"clusters: keep 'sample_idx' in the meta_keys of the PackInputs of {key} "
                f'(it is there by default: PackInputs.DEFAULT_META_KEYS), and use a data set '
                f'derived from mmengine BaseDataset (which sets it).')
    return packed


def check_num_clusters(num_clusters: Sequence[int], num_samples: int,
                       world_size: int = 1) -> None:
    """Refuse levels with more clusters than training samples.

    Args:
        num_clusters (Sequence[int]): ``K_l`` per level, finest first.
        num_samples (int): Training samples ``N``.
        world_size (int): Processes sharing the extraction (each needs a sample).

    Raises:
        PipelineCheckError: Naming ``model.num_clusters`` and the largest allowed ``K``.
    """
    too_many = [(level, k) for level, k in enumerate(num_clusters) if k > num_samples]
    if too_many:
        level, k = too_many[0]
        raise PipelineCheckError(
            f'model.num_clusters={list(num_clusters)} asks for {k} clusters at level {level}, '
            f'but the training set has only {num_samples} samples (k-means cannot make more '
            f'clusters than points): set model.num_clusters to at most {num_samples} '
            f'clusters per level, or train on more data.')
    if num_samples < world_size:
        raise PipelineCheckError(
            f'The training set has {num_samples} samples for {world_size} processes: the '
            f'clustering extraction gives each process a share, and some would get none. '
            f'Use fewer processes or more data.')
