"""Weighted k-nearest-neighbour classification of frozen backbone features (HIRL's KNN).

Usage::

    python tools/benchmarks/classification/knn.py CONFIG CHECKPOINT [--cache-dir DIR]
    bash tools/benchmarks/classification/dist_knn.sh CONFIG CHECKPOINT GPUS [knn.py args]
    # e.g. ImageNet, 8 GPUs:
    bash tools/benchmarks/classification/dist_knn.sh \\
        configs/benchmarks/classification/knn/knn_imagenet.py work_dirs/x/epoch_200.pth 8

Protocol (InstDisc / DINO / HIRL): the L2-normalised embedding of every training image
(the memory) and every validation image (the queries) is extracted with the eval transform;
each query's k most cosine-similar memory images vote for their label with weight
``exp(similarity / T)``; top-1 accuracy for k = 10, 20, 100, 200 and T = 0.07.

CHECKPOINT is any checkpoint holding the backbone under ``backbone.`` (hirl_mm or plain
mmpretrain); it must fit ``model.backbone`` of CONFIG exactly. CONFIG names the data::

    knn_eval = dict(
        memory=dict(type='ImageNet', data_root='data/imagenet', split='train',
                    pipeline=test_pipeline),    # labelled memory bank, eval transform
        query=dict(type='ImageNet', data_root='data/imagenet', split='val',
                   pipeline=test_pipeline),     # labelled queries
        ks=[10, 20, 100, 200], temperature=0.07, batch_size=256, num_workers=8)

Every key is optional: without ``memory`` / ``query`` the datasets of ``train_dataloader``
(with the pipeline of ``val_dataloader``) and ``val_dataloader`` are used, so an
mmpretrain classification config works as is. The features are extracted by all processes
(each a share, gathered by sample index); ``--cache-dir`` stores them as .pt files keyed
by checkpoint and data set. Results: a table on stdout and JSON (``--out``; default
``<checkpoint folder or --work-dir>/<checkpoint name>_knn.json``).
"""
import argparse
import copy
import os.path as osp
import sys
from typing import List, Optional

import torch
# hirl_mm first: it registers our components and allow-lists mmengine's checkpoint types.
import hirl_mm  # noqa: F401
from mmengine import dist
from mmengine.config import Config

from hirl_mm.evaluation import weighted_knn_classify
from hirl_mm.evaluation.dataset_features import extract_dataset_features
from hirl_mm.evaluation.protocol_setup import add_common_args, setup_evaluation
from hirl_mm.evaluation.results_output import (dataset_name, default_output_file,
                                               describe_dataset, dump_json, format_table)
from hirl_mm.utils.launch import MissingInputError
from hirl_mm.utils.pretrained import PretrainedLoadingError

DEFAULTS = dict(ks=[10, 20, 100, 200], temperature=0.07, batch_size=256, num_workers=4)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Weighted k-NN evaluation of a backbone')
    add_common_args(parser)
    parser.add_argument('--ks', type=int, nargs='+', help='numbers of neighbours '
                        '(default: knn_eval.ks, else 10 20 100 200)')
    parser.add_argument('--temperature', type=float,
                        help='temperature of the vote (default: knn_eval.temperature, else '
                        '0.07)')
    return parser.parse_args(argv)


def knn_settings(cfg: Config, args: Optional[argparse.Namespace] = None) -> dict:
    """The KNN settings: ``knn_eval`` of the config, filled in by the dataloaders' data sets
    and the defaults, overridden by the command line.

    Returns:
        dict: ``memory``, ``query`` (data set configs), ``ks``, ``temperature``,
        ``batch_size``, ``num_workers``.
    """
    section = copy.deepcopy(dict(cfg.get('knn_eval') or {}))
    settings = dict(DEFAULTS, **section)
    val_loader = cfg.get('val_dataloader') or {}
    if settings.get('query') is None:
        if not val_loader.get('dataset'):
            raise ValueError('The config has neither knn_eval.query nor val_dataloader.dataset '
                             'to take the queries from.')
        settings['query'] = copy.deepcopy(val_loader['dataset'])
    if settings.get('memory') is None:
        train_loader = cfg.get('train_dataloader') or {}
        if not train_loader.get('dataset'):
            raise ValueError('The config has neither knn_eval.memory nor '
                             'train_dataloader.dataset to take the memory bank from.')
        memory = copy.deepcopy(train_loader['dataset'])
        # The memory bank is embedded with the eval transform, like the queries.
        memory['pipeline'] = copy.deepcopy(settings['query']['pipeline'])
        settings['memory'] = memory
    for key in ('ks', 'temperature', 'batch_size', 'num_workers'):
        value = getattr(args, key, None) if args is not None else None
        if value is not None:
            settings[key] = value
    settings['ks'] = sorted({int(k) for k in settings['ks']})
    return settings


def main(argv: Optional[List[str]] = None) -> dict:
    """Run the KNN protocol; returns the results (on rank 0; ``{}`` elsewhere)."""
    args = parse_args(argv)
    setup = setup_evaluation(args)
    settings = knn_settings(setup.cfg, args)
    extracted = {}
    for role in ('memory', 'query'):
        extracted[role] = extract_dataset_features(
            setup.model, settings[role], settings['batch_size'], settings['num_workers'],
            name=dataset_name(settings[role], role), checkpoint=args.checkpoint,
            cache_dir=args.cache_dir, model_cfg=setup.model_cfg)
    memory, query = extracted['memory'], extracted['query']
    num_classes = max(memory.num_classes, query.num_classes,
                      int(memory.labels.max()) + 1, int(query.labels.max()) + 1)

    results = {}
    if dist.is_main_process():
        device = setup.device
        top1 = weighted_knn_classify(
            memory.features.to(device), memory.labels, query.features.to(device),
            query.labels, num_classes, ks=settings['ks'], temperature=settings['temperature'])
        results = dict(
            protocol='knn',
            config=osp.abspath(args.config),
            checkpoint=args.checkpoint if '://' in args.checkpoint
            else osp.abspath(args.checkpoint),
            temperature=settings['temperature'],
            ks=settings['ks'],
            num_classes=num_classes,
            feature_dim=int(memory.features.shape[1]),
            world_size=dist.get_world_size(),
            memory=dict(dataset=describe_dataset(settings['memory']),
                        num_samples=int(memory.features.shape[0]),
                        cache_file=memory.cache_file, from_cache=memory.from_cache),
            query=dict(dataset=describe_dataset(settings['query']),
                       num_samples=int(query.features.shape[0]),
                       cache_file=query.cache_file, from_cache=query.from_cache),
            top1={str(k): acc for k, acc in top1.items()})
        out = args.out or default_output_file(args.checkpoint, 'knn', args.work_dir)
        dump_json(results, out)
        print(f'\n== Weighted k-NN top-1 (T={settings["temperature"]}): '
              f'{results["memory"]["num_samples"]} memory images '
              f'({results["memory"]["dataset"]}), {results["query"]["num_samples"]} queries '
              f'({results["query"]["dataset"]}), {num_classes} classes ==')
        print(format_table(['k', 'top-1 (%)'], [[k, acc] for k, acc in top1.items()],
                           float_format='{:.2f}'))
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
