"""Unsupervised clustering evaluation of a backbone (and of HIRL's learned hierarchy).

Usage::

    python tools/benchmarks/classification/cluster_eval.py CONFIG CHECKPOINT [--cache-dir DIR]
        [--pretrain-config PRETRAIN_CONFIG]
    bash tools/benchmarks/classification/dist_cluster_eval.sh CONFIG CHECKPOINT GPUS [args]
    # e.g. ImageNet val, 8 GPUs:
    bash tools/benchmarks/classification/dist_cluster_eval.sh \\
        configs/benchmarks/classification/clustering/kmeans_imagenet.py \\
        work_dirs/x/epoch_200.pth 8

Protocol (HIRL): the L2-normalised backbone embeddings of the validation images are
clustered by k-means with as many clusters as classes (1000 on ImageNet) and compared with
the labels: NMI, AMI, ARI and Hungarian accuracy (the best one-to-one cluster-to-class
matching, scipy's ``linear_sum_assignment``; reported as a fraction).

Label hierarchies: where the data set has coarse labels (``get_coarse_labels()``, e.g.
``HierarchicalFashionMNIST``), k-means also runs with as many clusters as coarse classes,
and every clustering is scored against every label level (fine and coarse).

HIRL's learned levels: where the checkpoint holds HIRL's prototypes
(``prototypes.centroids_l`` / ``parents_l``), each image is put in its nearest level-0
prototype (cosine) and lifted through the parents to every learned level, and every
learned level is scored against every label level: a matrix that shows whether the learned
hierarchy matches the real one. The images are embedded in the space the prototypes were
built in (``prototype_space`` in the results):

- checkpoints that record it (``prototypes.embedding_space``, e.g. ``'neck'``): the
  pre-training model is rebuilt from the config the checkpoint records (``meta['cfg']``,
  or ``--pretrain-config`` for a checkpoint without one), the whole checkpoint is loaded
  into it strictly, and the images are embedded by its ``extract_clustering_embedding``
  (the momentum encoder's backbone + neck for MoCo / BYOL) after its own data
  preprocessor. Without either config the levels are skipped, with a note;
- legacy checkpoints (written before hirl_mm recorded the space): their prototypes were
  built on the pooled backbone, so the backbone features are used (noted in the results).

CONFIG (all keys optional)::

    cluster_eval = dict(
        dataset=dict(type='ImageNet', data_root='data/imagenet', split='val',
                     pipeline=test_pipeline),   # default: knn_eval.query, else
                                                # val_dataloader.dataset
        num_clusters=None,      # None: K = number of classes of each label level
        clusterer=dict(type='HierarchicalKMeans', backend='auto', num_iters=20,
                       num_redo=5, seed=0),
        prototypes=True,        # score HIRL's learned levels if the checkpoint has them
        batch_size=256, num_workers=4)

Results: a table on stdout and JSON (``--out``; default
``<checkpoint folder or --work-dir>/<checkpoint name>_clustering.json``).
"""
import argparse
import copy
import os.path as osp
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
# hirl_mm first: it registers our components and allow-lists mmengine's checkpoint types.
import hirl_mm  # noqa: F401
from mmengine import dist
from mmengine.config import Config
from mmengine.logging import print_log
from torch import Tensor

from hirl_mm.evaluation import clustering_scores
from hirl_mm.evaluation.checkpoint_reading import pretrain_config
from hirl_mm.evaluation.dataset_features import DatasetFeatures, extract_dataset_features
from hirl_mm.evaluation.pretrain_model import load_pretrain_model, pretrain_model_key
from hirl_mm.evaluation.protocol_setup import (EvaluationSetup, add_common_args,
                                               setup_evaluation)
from hirl_mm.evaluation.prototypes import (assign_to_prototypes, load_stored_prototypes,
                                           read_prototypes)
from hirl_mm.evaluation.results_output import (dataset_name, default_output_file,
                                               describe_dataset, dump_json, format_table)
from hirl_mm.registry import CLUSTERERS
from hirl_mm.utils.launch import MissingInputError
from hirl_mm.utils.pretrained import PretrainedLoadingError

DEFAULTS = dict(
    num_clusters=None,
    clusterer=dict(type='HierarchicalKMeans', backend='auto', num_iters=20, num_redo=5,
                   seed=0),
    prototypes=True,
    batch_size=256,
    num_workers=4)
METRICS = ('nmi', 'ami', 'ari', 'acc')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Clustering evaluation of a backbone')
    add_common_args(parser)
    parser.add_argument('--num-clusters', type=int, nargs='+',
                        help='k-means cluster counts (default: the number of classes of '
                        'every label level)')
    parser.add_argument('--no-prototypes', action='store_true',
                        help="do not score the checkpoint's HIRL prototypes")
    parser.add_argument('--pretrain-config',
                        help='pre-training config of CHECKPOINT, to embed the images in its '
                        "prototypes' space when the checkpoint does not record its config")
    return parser.parse_args(argv)


def cluster_settings(cfg: Config, args: Optional[argparse.Namespace] = None) -> dict:
    """``cluster_eval`` of the config filled in with defaults and overridden by ``args``.

    Returns:
        dict: ``dataset``, ``num_clusters``, ``clusterer``, ``prototypes``, ``batch_size``,
        ``num_workers``.
    """
    section = copy.deepcopy(dict(cfg.get('cluster_eval') or {}))
    settings = copy.deepcopy(DEFAULTS)
    settings.update(section)
    if settings.get('dataset') is None:
        knn_query = (cfg.get('knn_eval') or {}).get('query')
        val_dataset = (cfg.get('val_dataloader') or {}).get('dataset')
        if knn_query is None and val_dataset is None:
            raise ValueError('The config has none of cluster_eval.dataset, knn_eval.query '
                             'and val_dataloader.dataset to cluster.')
        settings['dataset'] = copy.deepcopy(knn_query if knn_query is not None
                                            else val_dataset)
    if args is not None:
        for key in ('batch_size', 'num_workers', 'num_clusters'):
            if getattr(args, key, None) is not None:
                settings[key] = getattr(args, key)
        if args.no_prototypes:
            settings['prototypes'] = False
    return settings


def _build_clusterer(clusterer_cfg: dict, num_clusters: int):
    """A one-level clusterer (e.g. ``HierarchicalKMeans``) with ``num_clusters`` clusters."""
    kwargs = copy.deepcopy(dict(clusterer_cfg))
    kwargs.pop('_scope_', None)
    clusterer_type = kwargs.pop('type', 'HierarchicalKMeans')
    clusterer_cls = CLUSTERERS.get(clusterer_type) if isinstance(clusterer_type, str) \
        else clusterer_type
    if clusterer_cls is None:
        raise KeyError(f'Unknown clusterer {clusterer_type!r}; registered: '
                       f'{sorted(CLUSTERERS.module_dict)}.')
    return clusterer_cls(num_clusters=[num_clusters], **kwargs)


def _row(method: str, level: Optional[int], assignment: Tensor, num_clusters: int,
         label_levels: Dict[str, tuple]) -> dict:
    """Scores of one clustering against every label level."""
    assignment = assignment.cpu().numpy()
    return dict(
        method=method,
        level=level,
        num_clusters=int(num_clusters),
        num_nonempty=int(len(set(assignment.tolist()))),
        scores={name: clustering_scores(labels.numpy(), assignment)
                for name, (labels, _) in label_levels.items()})


LEGACY_NOTE = 'legacy checkpoint: prototypes built on the pooled backbone'


@dataclass
class PrototypeInput:
    """The images' features in the space of the checkpoint's prototypes.

    Attributes:
        features (DatasetFeatures, optional): L2-normalised, in that space; None when the
            learned levels are not scored.
        space (str, optional): ``'neck'`` / ``'backbone'``; None without prototypes.
        note (str, optional): Why the levels are not scored, or how they were embedded.
    """

    features: Optional[DatasetFeatures] = None
    space: Optional[str] = None
    note: Optional[str] = None


def prototype_input(setup: EvaluationSetup, settings: dict, backbone: DatasetFeatures,
                    args: argparse.Namespace) -> PrototypeInput:
    """Embed the clustered images in the space the checkpoint's prototypes live in.

    Called on every rank (the extraction is distributed, like the backbone features'):

    - a checkpoint recording its space (``prototypes.embedding_space``): the pre-training
      model, rebuilt from the checkpoint's ``meta['cfg']`` (else ``--pretrain-config``)
      with the whole checkpoint loaded strictly, embeds the images with
      ``extract_clustering_embedding``; cached apart from the backbone features;
    - a legacy checkpoint: the backbone features (its prototypes were built on them).

    Args:
        setup (EvaluationSetup): The checkpoint's state dict and meta, the device.
        settings (dict): From :func:`cluster_settings`.
        backbone (DatasetFeatures): The backbone features of the same images.
        args (argparse.Namespace): ``checkpoint``, ``cache_dir``, ``pretrain_config``.

    Returns:
        PrototypeInput: The features (None when not scored), the space and a note.

    Raises:
        PretrainedLoadingError: If the checkpoint does not fit its pre-training model.
    """
    if not settings['prototypes']:
        return PrototypeInput(note='not evaluated (disabled)')
    stored = load_stored_prototypes(setup.state_dict)
    if stored is None or not stored.ready:
        return PrototypeInput(note='the checkpoint has no HIRL prototypes (or none computed '
                              'yet)')
    if not stored.recorded:
        return PrototypeInput(features=backbone, space=stored.space, note=LEGACY_NOTE)
    recorded = bool(setup.meta.get('cfg'))
    cfg = pretrain_config(setup.meta, getattr(args, 'pretrain_config', None))
    if cfg is None:
        return PrototypeInput(space=stored.space, note=(
            f'skipped: the prototypes live in the {stored.space} space ({stored.dim}-d) of '
            f'the pre-training model, and the checkpoint does not record its config; pass '
            f'--pretrain-config (the config it was trained with)'))
    if recorded and getattr(args, 'pretrain_config', None):
        print_log('--pretrain-config is not used: the checkpoint records its pre-training '
                  'config.', logger='current')
    model = load_pretrain_model(cfg, setup.state_dict, args.checkpoint, setup.device)
    features = extract_dataset_features(
        model, settings['dataset'], settings['batch_size'], settings['num_workers'],
        name=f'{dataset_name(settings["dataset"], "query")}_{stored.space}-prototype-space',
        checkpoint=args.checkpoint, cache_dir=args.cache_dir,
        model_cfg=pretrain_model_key(cfg), embed=model.extract_clustering_embedding)
    source = 'its recorded config' if recorded else '--pretrain-config'
    return PrototypeInput(features=features, space=stored.space, note=(
        f'scored in their {stored.space} space ({stored.dim}-d): images embedded by the '
        f'pre-training model ({source})'))


def evaluate_clusterings(data: DatasetFeatures, settings: dict, state_dict: dict,
                         device: str = 'cpu',
                         prototypes: Optional[PrototypeInput] = None) -> dict:
    """Run k-means (and read HIRL's prototypes) and score them against the labels.

    Args:
        data (DatasetFeatures): The clustered images' backbone features and labels.
        settings (dict): From :func:`cluster_settings`.
        state_dict (dict): The checkpoint's state dict (for the prototypes).
        device (str): Where k-means and the prototype assignment run.
        prototypes (PrototypeInput, optional): The same images' features in the
            prototypes' space (:func:`prototype_input`); None: the learned levels are not
            scored.

    Returns:
        dict: ``label_levels`` (name -> number of classes), ``kmeans`` and
        ``prototype_levels`` (lists of rows: method, level, num_clusters, num_nonempty,
        scores[label level][metric]), ``prototype_space`` and ``prototypes_note``.
    """
    label_levels = data.label_levels()
    features = data.features.to(device)
    ks = settings['num_clusters'] or [num for _, num in label_levels.values()]
    ks = list(dict.fromkeys(int(k) for k in ks))  # unique, in order
    kmeans_rows = []
    for k in ks:
        clusterer = _build_clusterer(settings['clusterer'], k)
        start = time.time()
        assignment = clusterer(features).im2cluster[0]
        print_log(f'k-means with K={k} on {tuple(features.shape)} features: '
                  f'{time.time() - start:.1f} s', logger='current')
        kmeans_rows.append(_row('k-means', None, assignment, k, label_levels))

    prototypes = prototypes or PrototypeInput(note='not evaluated')
    results = dict(label_levels={name: num for name, (_, num) in label_levels.items()},
                   kmeans=kmeans_rows, prototype_levels=None,
                   prototype_space=prototypes.space)
    if prototypes.note:
        results['prototypes_note'] = prototypes.note
    if prototypes.features is None:
        return results
    centroids, parents = read_prototypes(state_dict)
    proto_features = prototypes.features.features.to(device)
    if centroids[0].shape[1] != proto_features.shape[1]:
        results['prototypes_note'] = (
            f'skipped: the prototypes have {centroids[0].shape[1]} dimensions, the '
            f'{prototypes.space} features {proto_features.shape[1]}')
        return results
    hierarchy = assign_to_prototypes(proto_features, centroids, parents)
    results['prototype_levels'] = [
        _row('HIRL prototypes', level, assignment, hierarchy.num_clusters[level],
             label_levels) for level, assignment in enumerate(hierarchy.im2cluster)
    ]
    return results


def format_results(results: dict) -> str:
    """One table: a row per clustering, a column per (metric, label level)."""
    levels = list(results['label_levels'])
    headers = ['clustering', 'K', 'used'] + [
        f'{metric.upper()}/{level}' for level in levels for metric in METRICS]
    rows = []
    for row in results['kmeans'] + (results['prototype_levels'] or []):
        name = 'k-means' if row['level'] is None else f'HIRL level {row["level"]}'
        rows.append([name, row['num_clusters'], row['num_nonempty']] + [
            row['scores'][level][metric] for level in levels for metric in METRICS])
    return format_table(headers, rows)


def main(argv: Optional[List[str]] = None) -> dict:
    """Run the clustering protocol; returns the results (on rank 0; ``{}`` elsewhere)."""
    args = parse_args(argv)
    setup = setup_evaluation(args)
    settings = cluster_settings(setup.cfg, args)
    data = extract_dataset_features(
        setup.model, settings['dataset'], settings['batch_size'], settings['num_workers'],
        name=dataset_name(settings['dataset'], 'query'), checkpoint=args.checkpoint,
        cache_dir=args.cache_dir, model_cfg=setup.model_cfg)
    prototypes = prototype_input(setup, settings, data, args)
    proto_data = prototypes.features

    results = {}
    if dist.is_main_process():
        scores = evaluate_clusterings(data, settings, setup.state_dict, setup.device,
                                      prototypes)
        results = dict(
            protocol='clustering',
            config=osp.abspath(args.config),
            checkpoint=args.checkpoint if '://' in args.checkpoint
            else osp.abspath(args.checkpoint),
            dataset=describe_dataset(settings['dataset']),
            num_samples=int(data.features.shape[0]),
            feature_dim=int(data.features.shape[1]),
            clusterer=copy.deepcopy(dict(settings['clusterer'])),
            world_size=dist.get_world_size(),
            cache_file=data.cache_file,
            from_cache=data.from_cache,
            prototype_feature_dim=None if proto_data is None
            else int(proto_data.features.shape[1]),
            prototype_cache_file=None if proto_data is None else proto_data.cache_file,
            prototype_from_cache=None if proto_data is None else proto_data.from_cache,
            **scores)
        out = args.out or default_output_file(args.checkpoint, 'clustering', args.work_dir)
        dump_json(results, out)
        levels = ', '.join(f'{name}: {num} classes'
                           for name, num in results['label_levels'].items())
        print(f'\n== Clustering of {results["num_samples"]} images ({results["dataset"]}; '
              f'{levels}) against every label level; ACC = Hungarian accuracy ==')
        print(format_results(results))
        if results.get('prototypes_note'):
            print(f'HIRL prototypes: {results["prototypes_note"]}')
        print(f'\nResults: {osp.abspath(out)}', flush=True)
    dist.barrier()
    return results


if __name__ == '__main__':
    try:
        main()
    except (MissingInputError, PretrainedLoadingError) as error:
        sys.exit(f'error: {error}')
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
