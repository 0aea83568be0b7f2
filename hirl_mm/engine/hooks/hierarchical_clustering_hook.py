"""Re-compute HIRL's hierarchical prototypes over the whole training set every epoch."""
import time
from typing import Dict, Optional, Sequence, Tuple

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.utils import get_ori_model
from torch import Tensor, nn

from hirl_mm.clustering import cluster_size_stats, format_cluster_size_stats
from hirl_mm.clustering.feature_bank import FeatureBank
from hirl_mm.engine.hooks.clustering_data import ClusteringDataMixin
from hirl_mm.engine.hooks.clustering_inputs import (BANK_DTYPES, IMAGENET_EXTRACT_PIPELINE,
                                                    bank_round_rows)
from hirl_mm.engine.hooks.pipeline_checks import check_num_clusters, probe_first_sample
from hirl_mm.engine.hooks.collapse_check import check_collapse
from hirl_mm.engine.hooks.schedule_checks import check_hirl_schedule
from hirl_mm.engine.hooks.training_utils import require_epoch_based_loop
from hirl_mm.registry import CLUSTERERS, HOOKS
from hirl_mm.utils.dist_utils import all_gather_rows
from hirl_mm.utils.feature_extraction import place_by_index

# What the hook does when stored prototypes do not belong to the training set.
ON_DATA_CHANGE = ('recluster', 'error')
# Message-hub info where the hook leaves its last round's timings for EpochTimerHook:
# ``{'end': perf_counter() at its end, 'extract_seconds', 'cluster_seconds'}``.
LAST_ROUND_INFO = 'hirl/last_round'


@HOOKS.register_module()
class HierarchicalClusteringHook(ClusteringDataMixin, Hook):
    """Extract embeddings of the whole training set, cluster them hierarchically, and store
    the prototypes in the HIRL model's buffers (so checkpoints resume them).

    Runs before epochs ``warmup_epochs``, ``warmup_epochs + interval``, ... (0-based), so
    nothing is clustered during the warm-up and only the SSL loss trains then. Extraction
    uses the eval pipeline and is split across ranks without padding, every sample exactly
    once. With more than one process the clusterer's sharded back end runs by default
    (``HierarchicalKMeans(distributed=None)``): each rank keeps only its own shard, all
    ranks cluster together and only the int assignments are gathered by ``sample_idx``.
    With ``distributed=False`` (or one process) the features are gathered and placed by
    ``sample_idx``, and rank 0 clusters and broadcasts. The clusterer's ``warm_start``
    starts each round from the stored prototypes.

    Before the first iteration it builds the extraction data set and runs its first sample
    through the training and the extraction pipelines, checking that both pack
    ``sample_idx`` and that every level has at most as many clusters as there are samples,
    so a bad setting stops the run at once instead of after the warm-up. The prototypes
    record the size and a fingerprint of the data list they were built on; prototypes
    loaded from a checkpoint that do not fit the training set are never used.

    Args:
        warmup_epochs (int): Epochs of plain SSL before the first clustering. Defaults to 20.
        interval (int): Epochs between clusterings. Defaults to 1.
        clusterer (dict): Config of the clustering algorithm (registry ``CLUSTERERS``);
            ``num_clusters`` is taken from the model. Defaults to
            ``dict(type='HierarchicalKMeans')``.
        extract_pipeline (list[dict], optional): Data pipeline for extraction. Defaults to
            the config's evaluation pipeline (``test_dataloader``'s, ``val_dataloader``'s,
            or a top-level ``test_pipeline`` / ``val_pipeline`` / ``eval_pipeline``), else
            the spec's ImageNet eval transform (resize 256, center-crop 224).
        extract_batch_size (int, optional): Defaults to the training batch size (4x it
            on a GPU, where the pass runs in bf16 autocast with channels-last images and
            pinned memory).
        extract_num_workers (int, optional): Defaults to the training loader's.
        bank_dtype (str): Dtype of the extracted feature bank: ``'float32'`` (default),
            ``'float16'`` or ``'bfloat16'`` (half the memory; distances, sums and
            centroids are still computed in float32, chunk by chunk, by the sharded back
            end; faiss and the single-process torch back end take a float32 copy).
        on_data_change (str): When prototypes loaded from a checkpoint were built on other
            data than the training set (another size or sample list): ``'recluster'`` (at
            once, before training on them; the default) or ``'error'`` (stop).
        feature_bank (bool): Cluster the embeddings the previous epoch's training steps
            computed instead of extracting them in a pass over the data (as DeepCluster-v2
            does): each step writes the clustering encoder's rows of its samples (the
            momentum / teacher encoder's output where the method computes one, else the
            online embedding of the first view) into a per-rank bank at their
            ``sample_idx``; the samples no rank trained on in that epoch (``drop_last``)
            are embedded with the extraction pipeline. The bank is not checkpointed: the
            first round after a resume extracts once. Defaults to False (the paper's
            extraction pass).
    """

    priority = 'NORMAL'

    def __init__(self,
                 warmup_epochs: int = 20,
                 interval: int = 1,
                 clusterer: Optional[dict] = None,
                 extract_pipeline: Optional[Sequence[dict]] = None,
                 extract_batch_size: Optional[int] = None,
                 extract_num_workers: Optional[int] = None,
                 bank_dtype: str = 'float32',
                 on_data_change: str = 'recluster',
                 feature_bank: bool = False) -> None:
        if warmup_epochs < 0 or interval < 1:
            raise ValueError(f'Need warmup_epochs >= 0 and interval >= 1, got '
                             f'warmup_epochs={warmup_epochs}, interval={interval}.')
        if on_data_change not in ON_DATA_CHANGE:
            raise ValueError(f'on_data_change must be one of {ON_DATA_CHANGE}, got '
                             f'{on_data_change!r}.')
        self.warmup_epochs = warmup_epochs
        self.interval = interval
        self.clusterer_cfg = dict(clusterer or dict(type='HierarchicalKMeans'))
        self.extract_pipeline = list(extract_pipeline or IMAGENET_EXTRACT_PIPELINE)
        # Unless given, the config's eval pipeline replaces the default at before_train.
        self._pipeline_source = 'extract_pipeline' if extract_pipeline else None
        self.on_data_change = on_data_change
        self._data_fingerprint = None
        self.extract_batch_size = extract_batch_size
        self.extract_num_workers = extract_num_workers
        if bank_dtype not in BANK_DTYPES:
            raise ValueError(f'bank_dtype must be one of {tuple(BANK_DTYPES)}, got '
                             f'{bank_dtype!r}.')
        self.bank_dtype = bank_dtype
        self.feature_bank = bool(feature_bank)
        self._bank: Optional[FeatureBank] = None
        self._loader = None
        self._clusterer = None

    def is_due(self, epoch: int) -> bool:
        """Whether clustering runs before the (0-based) ``epoch``."""
        return epoch >= self.warmup_epochs and (epoch - self.warmup_epochs) % self.interval == 0

    def before_run(self, runner: Runner) -> None:
        model = get_ori_model(runner.model)
        if not hasattr(model, 'prototypes') or not hasattr(model, 'extract_clustering_embedding'):
            raise TypeError(
                f'HierarchicalClusteringHook needs a HIRL model (model=dict(type="HIRL", '
                f'algorithm=..., ...)), got {type(model).__name__}.')
        clusterer_cfg = dict(self.clusterer_cfg, num_clusters=model.prototypes.num_clusters)
        self._clusterer = CLUSTERERS.build(clusterer_cfg)

    def before_train(self, runner: Runner) -> None:
        require_epoch_based_loop(runner, type(self).__name__)  # it clusters per epoch
        self._resolve_pipeline(runner)
        self._loader = self._build_loader(runner)
        self._check_before_training(runner)
        if self.feature_bank:
            loader = runner.train_dataloader
            self._bank = FeatureBank(len(loader) * loader.batch_size,
                                     BANK_DTYPES[self.bank_dtype])

    def before_train_epoch(self, runner: Runner) -> None:
        if self.is_due(runner.epoch):
            self._cluster_and_record(runner)
        else:
            self._check_prototypes_fit_data(runner)
        # The epoch before a round fills the bank (none after the last epoch).
        fills = (self._bank is not None and self.is_due(runner.epoch + 1)
                 and runner.epoch + 1 < runner.max_epochs)
        if fills:
            self._bank.reset(runner.epoch)
        get_ori_model(runner.model).bank_recording = fills

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        model = get_ori_model(runner.model)
        if not model.bank_recording:
            return
        rows = model.pop_bank_rows()
        if rows is None:
            raise RuntimeError(
                'HierarchicalClusteringHook(feature_bank=True): the training step left no '
                'rows for the feature bank; the model\'s loss did not run through HIRL\'s '
                '(a custom train_step?). Use feature_bank=False.')
        self._bank.add(*rows)

    def after_train_epoch(self, runner: Runner) -> None:
        get_ori_model(runner.model).bank_recording = False

    def _cluster_and_record(self, runner: Runner) -> None:
        """One clustering round, then record which data it was built on."""
        self.cluster(runner)
        get_ori_model(runner.model).prototypes.record_data(self._fingerprint(runner))

    def _check_prototypes_fit_data(self, runner: Runner) -> None:
        """Before an epoch that does not cluster: prototypes loaded from a checkpoint
        must have been built on this training set; re-cluster or stop if not."""
        prototypes = get_ori_model(runner.model).prototypes
        dataset = (self._loader or self._build_loader(runner)).dataset
        change = prototypes.data_mismatch(len(dataset), self._fingerprint(runner))
        if change is None:
            return
        if self.on_data_change == 'error':
            raise RuntimeError(
                f'HIRL: the stored prototypes do not belong to this training set: {change}. '
                f'Their cluster assignments (by sample_idx) would point at other images. '
                f'Train on the data the checkpoint was trained on, or let the hook '
                f're-cluster (HierarchicalClusteringHook on_data_change=\'recluster\').')
        runner.logger.warning(f'HIRL: the stored prototypes do not belong to this training '
                              f'set: {change}. Re-clustering now, before epoch '
                              f'{runner.epoch}, instead of training on them.')
        self._cluster_and_record(runner)

    def _check_before_training(self, runner: Runner) -> None:
        """Stop before the first iteration on settings the first clustering would trip on.

        Raises:
            PipelineCheckError: Naming the config key to change.
        """
        hook_key = 'custom_hooks: HierarchicalClusteringHook(extract_pipeline=...)'
        where = hook_key if self._pipeline_source == 'extract_pipeline' else \
            f'{hook_key} (now taken from {self._pipeline_source})'
        probe_first_sample(runner.train_dataloader.dataset, 'The training pipeline',
                           'train_dataloader.dataset.pipeline')
        probe_first_sample(self._loader.dataset, 'The extraction pipeline of '
                           'HierarchicalClusteringHook', where)
        check_num_clusters(get_ori_model(runner.model).prototypes.num_clusters,
                           len(self._loader.dataset), dist.get_world_size())
        check_hirl_schedule(runner, self.warmup_epochs, self.interval)  # clusters at all?

    def bank_is_current(self, runner: Runner) -> bool:
        """Whether the feature bank holds the rows of the epoch before ``runner.epoch``."""
        return (self._bank is not None and self._bank.epoch is not None
                and self._bank.epoch == runner.epoch - 1)

    def _round_rows(self, runner: Runner, sharded: bool) -> Tuple[Tensor, Tensor, int, str]:
        """The rows a round clusters: this rank's shard with its ``sample_idx`` (sharded)
        or all ``[N, D]`` rows in ``sample_idx`` order (``sample_idx`` then None), ``N``,
        and where they came from (for the log)."""
        model = get_ori_model(runner.model)
        if not self.bank_is_current(runner):
            if self._bank is not None:
                runner.logger.info(
                    f'HIRL: the feature bank holds no rows of epoch {runner.epoch - 1} (the '
                    f'first round before any training epoch, or the first round after a '
                    f'resume: the bank is not checkpointed); extracting once.')
            if sharded:
                features, sample_idx, num_samples = self.extract_shard(runner)
                return features, sample_idx, num_samples, 'extraction'
            features = self.extract(runner)
            return features, None, features.shape[0], 'extraction'
        loader = self._loader or self._build_loader(runner)
        features, sample_idx, num_missing = bank_round_rows(self._bank, model, loader)
        num_samples = len(loader.dataset)
        if not sharded:  # rank 0 clusters: gathered and placed, as the extraction does
            features = place_by_index(all_gather_rows(features),
                                      all_gather_rows(sample_idx), num_samples)
            sample_idx = None
        return features, sample_idx, num_samples, (
            f'feature bank of epoch {self._bank.epoch} ({num_missing} samples no step saw '
            f'embedded)')

    def cluster(self, runner: Runner) -> None:
        """Extract (or read the feature bank), cluster (sharded over the ranks, or on rank
        0 and broadcast) and store one round of prototypes."""
        model = get_ori_model(runner.model)
        prototypes = model.prototypes
        sharded = bool(getattr(self._clusterer, 'uses_sharded', lambda: False)())
        # The previous round, for a clusterer that warm starts from it.
        previous = dict(previous=prototypes.as_result()) if prototypes.ready and getattr(
            self._clusterer, 'warm_start', False) else {}
        source = ('the feature bank' if self.bank_is_current(runner) else
                  'an extraction pass over the training set')
        runner.logger.info(f'HIRL: clustering round {int(prototypes.num_updates) + 1} '
                           f'before epoch {runner.epoch}: embeddings from {source}, '
                           f'{"sharded over the ranks" if sharded else "clustered on rank 0"}'
                           f', {self.bank_dtype} rows')
        start = time.perf_counter()
        features, sample_idx, num_samples, source = self._round_rows(runner, sharded)
        extract_seconds = time.perf_counter() - start
        start = time.perf_counter()
        if sharded:
            result = self._clusterer.cluster_shard(features, sample_idx, num_samples,
                                                   **previous)
            del features
            prototypes.update(result.centroids, result.parents, result.im2cluster)
            self._log(runner, prototypes, extract_seconds, time.perf_counter() - start,
                      source)
            return

        device = features.device
        if dist.is_main_process():
            result = self._clusterer(features, **previous)
            centroids, parents, im2cluster = result.centroids, result.parents, result.im2cluster
        else:
            centroids = [torch.empty(k, features.shape[1], device=device)
                         for k in prototypes.num_clusters]
            parents = [torch.empty(k, dtype=torch.long, device=device)
                       for k in prototypes.num_clusters[:-1]]
            im2cluster = [torch.empty(num_samples, dtype=torch.long, device=device)
                          for _ in prototypes.num_clusters]
        del features
        for tensor in [*centroids, *parents, *im2cluster]:
            dist.broadcast(tensor, src=0)
        prototypes.update(centroids, parents, im2cluster)
        cluster_seconds = time.perf_counter() - start
        self._log(runner, prototypes, extract_seconds, cluster_seconds, source)

    def _log(self, runner: Runner, prototypes: nn.Module, extract_seconds: float,
             cluster_seconds: float, source: str = 'extraction') -> None:
        stats = cluster_size_stats(prototypes.as_result())
        runner.logger.info(
            f'HIRL clustering of {prototypes.num_samples} samples: {source} '
            f'{extract_seconds:.1f} s, clustering {cluster_seconds:.1f} s\n'
            + format_cluster_size_stats(stats))
        # For EpochTimerHook, which splits the epoch's time.
        runner.message_hub.update_info(LAST_ROUND_INFO, dict(
            end=time.perf_counter(), extract_seconds=extract_seconds,
            cluster_seconds=cluster_seconds))
        if dist.is_main_process():
            scalars: Dict[str, float] = {'hirl/extract_seconds': extract_seconds,
                                         'hirl/cluster_seconds': cluster_seconds}
            for s in stats:
                for key in ('min_size', 'median_size', 'max_size', 'num_empty'):
                    scalars[f'hirl/level{s["level"]}_{key}'] = float(s[key])
            runner.visualizer.add_scalars(scalars, step=runner.epoch)
        check_collapse(runner, stats)  # warns, or stops after repeated collapsed rounds
