"""What HierarchicalClusteringHook clusters: pipelines, bank dtypes and the rows of a round.

A round clusters one L2-normalised row per training sample, from either source:

- the extraction pass (the paper's way): the clustering encoder embeds every sample with
  the eval pipeline, each rank its share;
- the training-fed bank (:class:`~hirl_mm.clustering.feature_bank.FeatureBank`): the rows
  the previous epoch's training steps computed, plus the few samples no rank trained on in
  that epoch (``drop_last``), embedded here with the eval pipeline.
"""
import copy
from typing import List, Tuple

import torch
from mmengine import dist
from torch import Tensor, nn

from hirl_mm.clustering.feature_bank import FeatureBank
from hirl_mm.utils.feature_extraction import extract_embedding_shard

# The spec's eval transform for ImageNet-sized images (resize 256, center-crop 224).
IMAGENET_EXTRACT_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
# Dtypes the feature bank may be kept in (the clustering maths is float32 either way).
BANK_DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}


def with_pipeline(dataset_cfg: dict, pipeline: List[dict]) -> dict:
    """A copy of a dataset config whose (innermost) pipeline is ``pipeline``.

    Args:
        dataset_cfg (dict): The training set's config.
        pipeline (list[dict]): The pipeline to put in.

    Returns:
        dict: The copy.
    """
    if not isinstance(dataset_cfg, dict):
        raise TypeError('HierarchicalClusteringHook rebuilds the training set with the '
                        'extraction pipeline and needs train_dataloader.dataset as a config '
                        f'dict, not {type(dataset_cfg).__name__}.')
    cfg = copy.deepcopy(dataset_cfg)
    if 'dataset' in cfg and 'pipeline' not in cfg:  # a wrapper such as RepeatDataset
        cfg['dataset'] = with_pipeline(cfg['dataset'], pipeline)
    else:
        cfg['pipeline'] = copy.deepcopy(pipeline)
    return cfg


def embed_samples(model: nn.Module, loader: torch.utils.data.DataLoader, indices: Tensor,
                  dtype: torch.dtype) -> Tuple[Tensor, Tensor]:
    """This rank's share (``indices[rank::world]``) of some samples, embedded for
    clustering with the extraction loader's data set and pipeline.

    Args:
        model (nn.Module): The HIRL model (unwrapped).
        loader (DataLoader): The hook's extraction loader (its data set, collate function
            and batch size are reused).
        indices (Tensor): ``[m]`` sample indices, identical on every rank.
        dtype (torch.dtype): Dtype of the rows.

    Returns:
        tuple[Tensor, Tensor]: ``[m_rank, D]`` L2-normalised rows (possibly none) and their
        ``[m_rank]`` int64 indices.
    """
    mine = indices[dist.get_rank()::dist.get_world_size()].tolist()
    if not mine:
        return torch.empty(0, 0, dtype=dtype), torch.empty(0, dtype=torch.long)
    subset = torch.utils.data.DataLoader(
        loader.dataset, batch_size=loader.batch_size, sampler=mine,
        num_workers=0, collate_fn=loader.collate_fn)
    return extract_embedding_shard(model, subset, model.extract_clustering_embedding,
                                   show_progress=False, dtype=dtype)


def bank_round_rows(bank: FeatureBank, model: nn.Module,
                    loader: torch.utils.data.DataLoader) -> Tuple[Tensor, Tensor, int]:
    """This rank's rows for a clustering round read from the bank.

    The rows the bank owns, plus this rank's share of the samples no rank trained on in
    the epoch that filled it, embedded with the extraction pipeline. Every sample is held
    by exactly one rank afterwards.

    Args:
        bank (FeatureBank): Filled by the previous epoch's training steps.
        model (nn.Module): The HIRL model (unwrapped).
        loader (DataLoader): The hook's extraction loader.

    Returns:
        tuple[Tensor, Tensor, int]: ``[n_rank, D]`` rows, their ``[n_rank]`` sample
        indices, and the number of samples that were embedded because no step saw them.
    """
    num_samples = len(loader.dataset)
    shard = bank.shard(num_samples)
    features, sample_idx = shard.features, shard.sample_idx
    if shard.missing.numel():
        rows, idx = embed_samples(model, loader, shard.missing, bank.dtype)
        if idx.numel():
            rows, idx = rows.to(features.device), idx.to(sample_idx.device)
            features = rows if features.numel() == 0 else torch.cat([features, rows])
            sample_idx = torch.cat([sample_idx, idx])
    return features, sample_idx, int(shard.missing.numel())
