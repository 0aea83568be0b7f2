"""Unsupervised clustering evaluation of a backbone (and of HIRL's learned hierarchy).

Usage::

    python tools/benchmarks/classification/cluster_eval.py CONFIG CHECKPOINT [--cache-dir DIR]
    bash tools/benchmarks/classification/dist_cluster_eval.sh CONFIG CHECKPOINT GPUS [args]
    # e.g. ImageNet val, 8 GPUs:
    bash tools/benchmarks/classification/dist_cluster_eval.sh \\
        configs/benchmarks/classification/clustering/kmeans_imagenet.py \\
        work_dirs/x/epoch_200.pth 8

Protocol (HIRL): the L2-normalised embeddings of the validation images are clustered by
k-means with as many clusters as classes (1000 on ImageNet) and compared with the labels:
NMI, AMI, ARI and Hungarian accuracy (the best one-to-one cluster-to-class matching,
scipy's ``linear_sum_assignment``; reported as a fraction).

Label hierarchies: where the data set has coarse labels (``get_coarse_labels()``, e.g.
``HierarchicalFashionMNIST``), k-means also runs with as many clusters as coarse classes,
and every clustering is scored against every label level (fine and coarse). Where the
checkpoint holds HIRL's prototypes (``prototypes.centroids_l`` / ``parents_l``), each
image is also put in its nearest level-0 prototype (cosine) and lifted through the parents
to every learned level, and every learned level is scored against every label level: a
matrix that shows whether the learned hierarchy matches the real one. (The prototypes of
methods with a momentum encoder were built from that encoder's embeddings; the images here
are embedded with ``backbone.*``, the weights a downstream task uses.)

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
from typing import Dict, List, Optional

import torch
# hirl_mm first: it registers our components and allow-lists mmengine's checkpoint types.
import hirl_mm  # noqa: F401
from mmengine import dist
from mmengine.config import Config
from mmengine.logging import print_log
from torch import Tensor

from hirl_mm.evaluation import clustering_scores
from hirl_mm.evaluation.backbone_features import (DatasetFeatures, add_common_args,
                                                  assign_to_prototypes, dataset_name,
                                                  default_output_file, describe_dataset,
                                                  dump_json, extract_dataset_features,
                                                  format_table, read_prototypes,
                                                  setup_evaluation)
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


def evaluate_clusterings(data: DatasetFeatures, settings: dict, state_dict: dict,
                         device: str = 'cpu') -> dict:
    """Run k-means (and read HIRL's prototypes) and score them against the labels.

    Args:
        data (DatasetFeatures): The clustered images' features and labels.
        settings (dict): From :func:`cluster_settings`.
        state_dict (dict): The checkpoint's state dict (for the prototypes).
        device (str): Where k-means and the prototype assignment run.

    Returns:
        dict: ``label_levels`` (name -> number of classes), ``kmeans`` and
        ``prototype_levels`` (lists of rows: method, level, num_clusters, num_nonempty,
        scores[label level][metric]) and ``prototypes_note`` when they were skipped.
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

    results = dict(label_levels={name: num for name, (_, num) in label_levels.items()},
                   kmeans=kmeans_rows, prototype_levels=None)
    if not settings['prototypes']:
        results['prototypes_note'] = 'not evaluated (disabled)'
        return results
    prototypes = read_prototypes(state_dict)
    if prototypes is None:
        results['prototypes_note'] = ('the checkpoint has no HIRL prototypes (or none '
                                      'computed yet)')
        return results
    centroids, parents = prototypes
    if centroids[0].shape[1] != features.shape[1]:
        results['prototypes_note'] = (f'skipped: the prototypes have {centroids[0].shape[1]} '
                                      f'dimensions, the backbone features '
                                      f'{features.shape[1]}')
        return results
    hierarchy = assign_to_prototypes(features, centroids, parents)
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

    results = {}
    if dist.is_main_process():
        scores = evaluate_clusterings(data, settings, setup.state_dict, setup.device)
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
