"""The training set as HierarchicalClusteringHook embeds it: pipeline, loader, extraction.

:class:`ClusteringDataMixin` holds what the hook needs to embed every training sample
with the eval pipeline (the paper's extraction pass), split across the ranks: which
pipeline, the unshuffled and unpadded loader, the data set's fingerprint and the
extraction itself, gathered or kept as this rank's shard.
"""
from typing import Tuple

import torch
from mmengine.runner import Runner
from mmpretrain.utils import get_ori_model
from torch import Tensor

from hirl_mm.datasets.fingerprint import dataset_fingerprint
from hirl_mm.engine.hooks.clustering_inputs import BANK_DTYPES, with_pipeline
from hirl_mm.engine.hooks.pipeline_checks import config_eval_pipeline
from hirl_mm.utils.feature_extraction import (build_extraction_loader,
                                              extract_embedding_shard, extract_embeddings)

# Default extraction batch on a GPU: this many times the training batch per process.
GPU_EXTRACT_BATCH_FACTOR = 4


def _model_device(runner: Runner) -> torch.device:
    """The device of the model's parameters (CPU for a model without any)."""
    param = next(get_ori_model(runner.model).parameters(), None)
    return torch.device('cpu') if param is None else param.device


class ClusteringDataMixin:
    """Extraction of the training set for :class:`HierarchicalClusteringHook`.

    Expects the hook's ``extract_pipeline``, ``_pipeline_source``, ``extract_batch_size``,
    ``extract_num_workers``, ``bank_dtype``, ``_loader`` and ``_data_fingerprint``.
    """

    def _resolve_pipeline(self, runner: Runner) -> None:
        """Default the extraction pipeline to the config's eval pipeline, else ImageNet's."""
        if self._pipeline_source is not None:
            return
        found = config_eval_pipeline(runner.cfg)
        if found is None:
            self._pipeline_source = 'the default ImageNet eval pipeline'
        else:
            self.extract_pipeline, self._pipeline_source = found
        runner.logger.info(f'HIRL: extraction pipeline for clustering from '
                           f'{self._pipeline_source}: {self.extract_pipeline}')

    def _build_loader(self, runner: Runner) -> torch.utils.data.DataLoader:
        """The extraction loader over the training set with the extraction pipeline."""
        train_cfg = runner.cfg.train_dataloader
        self._resolve_pipeline(runner)
        on_gpu = _model_device(runner).type == 'cuda'
        return build_extraction_loader(
            with_pipeline(train_cfg['dataset'], self.extract_pipeline),
            # Inference keeps no activations for a backward: larger batches fit on a GPU.
            batch_size=self.extract_batch_size or train_cfg['batch_size'] * (
                GPU_EXTRACT_BATCH_FACTOR if on_gpu else 1),
            num_workers=(train_cfg.get('num_workers', 0)
                         if self.extract_num_workers is None else self.extract_num_workers),
            seed=runner.seed, pin_memory=on_gpu)

    def extract(self, runner: Runner) -> Tensor:
        """L2-normalised embeddings of every training sample, ``[N, D]``, on every rank."""
        model = get_ori_model(runner.model)
        features = extract_embeddings(model, self._loader or self._build_loader(runner),
                                      model.extract_clustering_embedding)
        return features.to(BANK_DTYPES[self.bank_dtype])

    def extract_shard(self, runner: Runner) -> Tuple[Tensor, Tensor, int]:
        """This rank's L2-normalised embeddings, their ``sample_idx`` and ``N`` (no gather).
        """
        model = get_ori_model(runner.model)
        loader = self._loader or self._build_loader(runner)
        features, sample_idx = extract_embedding_shard(
            model, loader, model.extract_clustering_embedding,
            dtype=BANK_DTYPES[self.bank_dtype])
        return features, sample_idx, len(loader.dataset)

    def _fingerprint(self, runner: Runner) -> bytes:
        """The extraction data set's fingerprint (its list does not change during a run)."""
        if self._data_fingerprint is None:
            loader = self._loader or self._build_loader(runner)
            self._data_fingerprint = dataset_fingerprint(loader.dataset)
        return self._data_fingerprint
