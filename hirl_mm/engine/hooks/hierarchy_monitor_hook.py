"""Watch HIRL learn: score the learned levels and a KNN probe while pre-training."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.utils import get_ori_model
from torch import Tensor

from hirl_mm.engine.hooks.pipeline_checks import config_eval_pipeline
from hirl_mm.engine.hooks.training_utils import require_epoch_based_loop
from hirl_mm.evaluation.functional import weighted_knn_classify
from hirl_mm.evaluation.hierarchy_scores import (build_training_images_loader,
                                              learned_level_scores)
from hirl_mm.evaluation.label_hierarchy import LabelLevel, dataset_label_levels
from hirl_mm.models.utils.embedding import backbone_embedding
from hirl_mm.models.utils.embedding_encoder import call_unmasked
from hirl_mm.registry import HOOKS
from hirl_mm.utils.feature_extraction import build_extraction_loader, extract_embeddings
from hirl_mm.utils.teacher_backbone import evaluated_backbone


def holdout_split(num_samples: int, fraction: float, max_queries: int, seed: int
                  ) -> Tuple[Tensor, Tensor]:
    """A fixed random split of the labelled images into KNN queries and memory.

    Returns:
        tuple: ``(query indices, memory indices)``.
    """
    num_queries = min(max_queries, max(1, round(fraction * num_samples)))
    order = torch.randperm(num_samples, generator=torch.Generator().manual_seed(seed))
    return order[:num_queries], order[num_queries:]


@HOOKS.register_module()
class HierarchyMonitorHook(Hook):
    """Log how good the learned hierarchy and the backbone are while HIRL pre-trains.

    After each clustering round and every ``interval`` epochs it logs, per learned level,
    the NMI and purity of the clustered training images' assignments against every label
    level of the data set (its fine classes, plus the levels of its label hierarchy or
    ``get_coarse_labels()``; see :mod:`hirl_mm.evaluation.label_hierarchy`), and the
    weighted KNN top-1 (cosine, T = ``temperature``) of the backbone's pooled features on a
    fixed held-out part of the labelled training images, the rest serving as memory. The
    values go to the log (a table) and to ``runner.visualizer`` (``monitor/level{l}_nmi_
    {label level}``, ``monitor/level{l}_purity_{label level}``, ``monitor/knn_top1``, step
    = completed epochs), so a TensorBoard / W&B backend draws the curves.

    It costs one pass of the backbone over the training set per evaluation, so it is on in
    the demo and off in the ImageNet configs (add it to ``custom_hooks`` to use it).
    It runs after :class:`HierarchicalClusteringHook` (priority ``LOW``) and reads the HIRL
    model's prototype buffers.

    Args:
        interval (int): Epochs between evaluations besides those after clustering rounds.
        knn_k (int): Neighbours of the KNN vote. Defaults to 20.
        knn_holdout (float): Fraction of the labelled images used as KNN queries.
        knn_max_queries (int): At most this many queries.
        temperature (float): KNN vote temperature. Defaults to 0.07.
        label_hierarchy (str | dict, optional): A label hierarchy (JSON file or mapping,
            class name -> parent); defaults to the data set's own.
        dataset (dict, optional): The labelled data set, in the order of the clustered
            images. Defaults to the training set read with labels and ``pipeline``.
        pipeline (list[dict], optional): Eval pipeline. Defaults to the clustering hook's,
            else the config's eval pipeline.
        batch_size (int, optional): Extraction batch size; defaults to the training one.
        seed (int): Seed of the held-out split.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 1, knn_k: int = 20, knn_holdout: float = 0.1,
                 knn_max_queries: int = 2000, temperature: float = 0.07,
                 label_hierarchy=None, dataset: Optional[dict] = None,
                 pipeline: Optional[Sequence[dict]] = None,
                 batch_size: Optional[int] = None, seed: int = 0) -> None:
        if interval < 1 or knn_k < 1 or not 0 < knn_holdout < 1 or knn_max_queries < 1:
            raise ValueError(f'HierarchyMonitorHook needs interval >= 1, knn_k >= 1, '
                             f'0 < knn_holdout < 1 and knn_max_queries >= 1; got '
                             f'{interval}, {knn_k}, {knn_holdout}, {knn_max_queries}.')
        self.interval = interval
        self.knn_k = knn_k
        self.knn_holdout = knn_holdout
        self.knn_max_queries = knn_max_queries
        self.temperature = temperature
        self.label_hierarchy = label_hierarchy
        self.dataset_cfg = dataset
        self.pipeline = list(pipeline) if pipeline else None
        self.batch_size = batch_size
        self.seed = seed
        self._loader = None
        self._levels: Dict[str, LabelLevel] = {}
        self._split: Optional[Tuple[Tensor, Tensor]] = None
        self._seen_updates: Optional[int] = None
        self.history: List[dict] = []  # every evaluation's scalars, for scripts and tests

    def before_train(self, runner: Runner) -> None:
        require_epoch_based_loop(runner, type(self).__name__)
        model = get_ori_model(runner.model)
        if not hasattr(model, 'prototypes'):
            raise TypeError(f'HierarchyMonitorHook watches a HIRL model (model=dict(type='
                            f'"HIRL", ...)), got {type(model).__name__}; remove the hook.')
        batch_size = self.batch_size or runner.cfg.train_dataloader['batch_size']
        if self.dataset_cfg:
            self._loader = build_extraction_loader(self.dataset_cfg, batch_size,
                                                   seed=runner.seed)
        else:
            self._loader, labelled = build_training_images_loader(
                runner.cfg.train_dataloader['dataset'], self._resolve_pipeline(runner),
                batch_size, seed=runner.seed)
            if not labelled:
                raise ValueError(
                    'HierarchyMonitorHook scores the learned levels against the labels of '
                    'the training images, and this training set has none (a folder without '
                    'class sub-folders). Remove the hook; hirl_report.py and '
                    'visualize_hierarchy.py still show the learned levels.')
        try:
            self._levels = dataset_label_levels(self._loader.dataset, self.label_hierarchy)
        except (KeyError, AttributeError, TypeError) as error:
            raise ValueError(
                f'HierarchyMonitorHook needs the labels of the training images and could '
                f'not read them ({type(error).__name__}: {error}); give it a labelled '
                f'copy (dataset=dict(...), same images and order) or remove the hook.'
            ) from error
        self._split = holdout_split(len(self._loader.dataset), self.knn_holdout,
                                    self.knn_max_queries, self.seed)
        self._seen_updates = int(model.prototypes.num_updates)

    def _resolve_pipeline(self, runner: Runner) -> List[dict]:
        if self.pipeline:
            return self.pipeline
        for hook in runner.hooks:  # the clustering hook's, resolved in its before_train
            if hasattr(hook, 'extract_pipeline') and hook is not self:
                return list(hook.extract_pipeline)
        found = config_eval_pipeline(runner.cfg)
        if found is None:
            raise ValueError('HierarchyMonitorHook needs an eval pipeline: pass '
                             'pipeline=[...] or define test_dataloader / eval_pipeline.')
        return found[0]

    def before_train_epoch(self, runner: Runner) -> None:
        updates = int(get_ori_model(runner.model).prototypes.num_updates)
        if updates != self._seen_updates:  # a clustering round just ran
            self._seen_updates = updates
            self.evaluate(runner, step=runner.epoch)

    def after_train_epoch(self, runner: Runner) -> None:
        done = runner.epoch + 1
        if done % self.interval and done != runner.max_epochs:
            return
        # A clustering round before the next epoch is evaluated right after it instead.
        clusters_next = any(getattr(hook, 'is_due', None) is not None and hook.is_due(done)
                            for hook in runner.hooks)
        if done == runner.max_epochs or not clusters_next:
            self.evaluate(runner, step=done)

    def knn_top1(self, runner: Runner) -> float:
        """KNN top-1 (%) of the evaluated backbone's pooled features on the held-out images."""
        model = get_ori_model(runner.model)
        was_training = model.training
        model.eval()
        features = extract_embeddings(
            model, self._loader,
            # DINO / iBOT: the teacher's backbone, which the papers (and hirl_report) evaluate.
            lambda x: backbone_embedding(call_unmasked(evaluated_backbone(model), x)),
            show_progress=False)
        model.train(was_training)
        fine = self._levels['fine']
        queries, memory = self._split
        labels = fine.labels.to(features.device)
        return weighted_knn_classify(features[memory], labels[memory], features[queries],
                                     labels[queries], fine.num_classes, ks=[self.knn_k],
                                     temperature=self.temperature)[self.knn_k]

    def evaluate(self, runner: Runner, step: int) -> Dict[str, float]:
        """Score the learned levels and the KNN probe now; log them at ``step``."""
        knn = self.knn_top1(runner)  # every rank extracts its share
        if not dist.is_main_process():
            return {}
        scalars = {'monitor/knn_top1': knn}
        prototypes = get_ori_model(runner.model).prototypes
        num_images = len(self._loader.dataset)
        rows = []
        if prototypes.ready and prototypes.num_samples == num_images:
            rows = learned_level_scores(prototypes.im2cluster, self._levels)
            for level, row in enumerate(rows):
                for name, scores in row.items():
                    for metric, value in scores.items():
                        scalars[f'monitor/level{level}_{metric}_{name}'] = value
        elif prototypes.ready:
            runner.logger.warning(f'HierarchyMonitorHook: the prototypes cluster '
                                  f'{prototypes.num_samples} images, its labelled data set '
                                  f'has {num_images}; learned levels not scored.')
        runner.visualizer.add_scalars(scalars, step=step)
        runner.logger.info(self._table(step, knn, rows, prototypes.num_clusters))
        self.history.append(dict(step=step, **scalars))
        return scalars

    def _table(self, step: int, knn: float, rows: List[dict], ks: List[int]) -> str:
        names = list(self._levels)
        lines = [f'HIRL monitor after {step} epoch(s): KNN top-1 (k={self.knn_k}) '
                 f'{knn:.2f}%']
        if rows:
            lines.append('level      K' + ''.join(f'  {"NMI/" + n:>14}  {"purity/" + n:>14}'
                                                 for n in names))
            for level, row in enumerate(rows):
                lines.append(f'{level:>5} {ks[level]:>6}' + ''.join(
                    f'  {row[n]["nmi"]:>14.3f}  {row[n]["purity"]:>14.3f}' for n in names))
        return '\n'.join(lines)
