"""Re-compute HIRL's hierarchical prototypes over the whole training set every epoch."""
import copy
import time
from typing import Dict, List, Optional, Sequence

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.utils import get_ori_model
from torch import Tensor, nn

from hirl_mm.clustering import cluster_size_stats, format_cluster_size_stats
from hirl_mm.engine.hooks.training_utils import require_epoch_based_loop
from hirl_mm.registry import CLUSTERERS, HOOKS
from hirl_mm.utils.feature_extraction import build_extraction_loader, extract_embeddings

# The spec's eval transform for ImageNet-sized images (resize 256, center-crop 224).
IMAGENET_EXTRACT_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]


def _with_pipeline(dataset_cfg: dict, pipeline: List[dict]) -> dict:
    """A copy of a dataset config whose (innermost) pipeline is ``pipeline``."""
    if not isinstance(dataset_cfg, dict):
        raise TypeError('HierarchicalClusteringHook rebuilds the training set with the '
                        'extraction pipeline and needs train_dataloader.dataset as a config '
                        f'dict, not {type(dataset_cfg).__name__}.')
    cfg = copy.deepcopy(dataset_cfg)
    if 'dataset' in cfg and 'pipeline' not in cfg:  # a wrapper such as RepeatDataset
        cfg['dataset'] = _with_pipeline(cfg['dataset'], pipeline)
    else:
        cfg['pipeline'] = copy.deepcopy(pipeline)
    return cfg


@HOOKS.register_module()
class HierarchicalClusteringHook(Hook):
    """Extract embeddings of the whole training set, cluster them hierarchically, and store
    the prototypes in the HIRL model's buffers (so checkpoints resume them).

    Runs before epochs ``warmup_epochs``, ``warmup_epochs + interval``, ... (0-based), so
    nothing is clustered during the warm-up and only the SSL loss trains then. Extraction
    uses the eval pipeline and is split across ranks without padding; features are gathered
    and placed by ``sample_idx``, every sample exactly once. Rank 0 clusters and broadcasts.

    Args:
        warmup_epochs (int): Epochs of plain SSL before the first clustering. Defaults to 20.
        interval (int): Epochs between clusterings. Defaults to 1.
        clusterer (dict): Config of the clustering algorithm (registry ``CLUSTERERS``);
            ``num_clusters`` is taken from the model. Defaults to
            ``dict(type='HierarchicalKMeans')``.
        extract_pipeline (list[dict], optional): Data pipeline for extraction. Defaults to
            the spec's ImageNet eval transform (resize 256, center-crop 224).
        extract_batch_size (int, optional): Defaults to the training batch size.
        extract_num_workers (int, optional): Defaults to the training loader's.
    """

    priority = 'NORMAL'

    def __init__(self,
                 warmup_epochs: int = 20,
                 interval: int = 1,
                 clusterer: Optional[dict] = None,
                 extract_pipeline: Optional[Sequence[dict]] = None,
                 extract_batch_size: Optional[int] = None,
                 extract_num_workers: Optional[int] = None) -> None:
        if warmup_epochs < 0 or interval < 1:
            raise ValueError(f'Need warmup_epochs >= 0 and interval >= 1, got '
                             f'warmup_epochs={warmup_epochs}, interval={interval}.')
        self.warmup_epochs = warmup_epochs
        self.interval = interval
        self.clusterer_cfg = dict(clusterer or dict(type='HierarchicalKMeans'))
        self.extract_pipeline = list(extract_pipeline or IMAGENET_EXTRACT_PIPELINE)
        self.extract_batch_size = extract_batch_size
        self.extract_num_workers = extract_num_workers
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
        self._loader = self._build_loader(runner)

    def before_train_epoch(self, runner: Runner) -> None:
        if self.is_due(runner.epoch):
            self.cluster(runner)

    def _build_loader(self, runner: Runner) -> torch.utils.data.DataLoader:
        train_cfg = runner.cfg.train_dataloader
        return build_extraction_loader(
            _with_pipeline(train_cfg['dataset'], self.extract_pipeline),
            batch_size=self.extract_batch_size or train_cfg['batch_size'],
            num_workers=(train_cfg.get('num_workers', 0)
                         if self.extract_num_workers is None else self.extract_num_workers),
            seed=runner.seed)

    def extract(self, runner: Runner) -> Tensor:
        """L2-normalised embeddings of every training sample, ``[N, D]``, on every rank."""
        model = get_ori_model(runner.model)
        return extract_embeddings(model, self._loader or self._build_loader(runner),
                                  model.extract_clustering_embedding)

    def cluster(self, runner: Runner) -> None:
        """Extract, cluster on rank 0, broadcast and store one round of prototypes."""
        model = get_ori_model(runner.model)
        prototypes = model.prototypes
        runner.logger.info(f'HIRL: extracting embeddings of the training set '
                           f'(epoch {runner.epoch}, clustering round '
                           f'{int(prototypes.num_updates) + 1})')
        start = time.perf_counter()
        features = self.extract(runner)
        extract_seconds = time.perf_counter() - start

        start = time.perf_counter()
        num_samples = features.shape[0]
        if dist.is_main_process():
            result = self._clusterer(features)
            centroids, parents, im2cluster = result.centroids, result.parents, result.im2cluster
        else:
            centroids = [features.new_empty(k, features.shape[1])
                         for k in prototypes.num_clusters]
            parents = [torch.empty(k, dtype=torch.long, device=features.device)
                       for k in prototypes.num_clusters[:-1]]
            im2cluster = [torch.empty(num_samples, dtype=torch.long, device=features.device)
                          for _ in prototypes.num_clusters]
        del features
        for tensor in [*centroids, *parents, *im2cluster]:
            dist.broadcast(tensor, src=0)
        prototypes.update(centroids, parents, im2cluster)
        cluster_seconds = time.perf_counter() - start
        self._log(runner, prototypes, extract_seconds, cluster_seconds)

    def _log(self, runner: Runner, prototypes: nn.Module, extract_seconds: float,
             cluster_seconds: float) -> None:
        stats = cluster_size_stats(prototypes.as_result())
        runner.logger.info(
            f'HIRL clustering of {prototypes.num_samples} samples: extraction '
            f'{extract_seconds:.1f} s, clustering {cluster_seconds:.1f} s\n'
            + format_cluster_size_stats(stats))
        if dist.is_main_process():
            scalars: Dict[str, float] = {'hirl/extract_seconds': extract_seconds,
                                         'hirl/cluster_seconds': cluster_seconds}
            for s in stats:
                for key in ('min_size', 'median_size', 'max_size', 'num_empty'):
                    scalars[f'hirl/level{s["level"]}_{key}'] = float(s[key])
            runner.visualizer.add_scalars(scalars, step=runner.epoch)
