"""Report on a HIRL checkpoint: prototypes, KNN top-1 and NMI of every learned level.

Usage:
    python tools/analysis_tools/hirl_report.py CONFIG CHECKPOINT [--out report.json]

An optional ``report`` dict in the config (see configs/demo/) sets ``eval_pipeline`` (how
the training images are read; default: the config's test / val pipeline, else the
clustering hook's ``extract_pipeline`` or its ImageNet default), ``query_dataset``
(labelled queries for KNN; KNN is skipped without it), ``knn_ks`` and ``batch_size``.
Every learned level is scored against every label level of the training set: its fine
classes, plus the levels of a label hierarchy (``--label-hierarchy FILE``,
``report.label_hierarchy``, or the data set's ``metainfo['label_hierarchy']``; see
hirl_mm/evaluation/label_hierarchy.py), else its coarse labels (``get_coarse_labels()``).
A training folder without class sub-folders (``CustomDataset(with_label=False)``) has no
labels: the report then gives the cluster statistics only (no KNN against the training
images, no NMI), and says so.

Only the backbone (loaded exactly from the checkpoint's ``backbone.*``, or for DINO / iBOT
its teacher's ``teacher.module.0.*`` as the papers evaluate, with the config's data
preprocessor) and the stored prototypes are read, so checkpoints of every hirl_mm
version work, including those written before the prototypes recorded their embedding
space (legacy: built on the pooled backbone). The report says which space the prototypes
live in; the learned levels are scored by the assignments stored with them
(``im2cluster``) of the training images.
"""
import argparse
import json
import os.path as osp
import sys
from typing import Dict, List, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

import hirl_mm  # noqa: F401  (registers components, allows mmengine checkpoints)
from hirl_mm.clustering import cluster_size_stats, format_cluster_size_stats
from hirl_mm.evaluation import clustering_scores, weighted_knn_classify
from hirl_mm.evaluation.checkpoint_reading import load_checkpoint_state
from hirl_mm.evaluation.feature_model import build_feature_model, load_backbone_weights
from hirl_mm.evaluation.hierarchy_scores import build_training_images_loader, tool_eval_pipeline
from hirl_mm.evaluation.label_hierarchy import dataset_label_levels, load_label_hierarchy
from hirl_mm.evaluation.prototypes import load_stored_prototypes
from hirl_mm.utils.feature_extraction import build_extraction_loader, extract_embeddings
from hirl_mm.utils.pretrained import PretrainedLoadingError
from hirl_mm.utils.teacher_backbone import has_teacher_backbone, teacher_backbone_state


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint written by tools/train.py')
    parser.add_argument('--out', help='JSON file for the results (default: next to the '
                        'checkpoint, <name>_report.json)')
    parser.add_argument('--label-hierarchy',
                        help='JSON label hierarchy (class name -> parent name) of the '
                        'training set, to score the learned levels against every level')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def _labels(dataset, name: str) -> torch.Tensor:
    return torch.as_tensor(getattr(dataset, name)(), dtype=torch.long)


def main(argv: Optional[List[str]] = None) -> int:
    """Print the report and write it as JSON; returns the exit status."""
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if not osp.isfile(args.checkpoint):
        sys.exit(f'Checkpoint {args.checkpoint} not found; train first (tools/train.py).')
    report = cfg.get('report') or {}
    eval_pipeline = tool_eval_pipeline(cfg)
    batch_size = report.get('batch_size', 256)
    init_default_scope(cfg.get('default_scope', 'hirl_mm'))

    state_dict = load_checkpoint_state(args.checkpoint)
    model = build_feature_model(cfg)  # the backbone and the pre-training data preprocessor
    backbone_state = state_dict
    if has_teacher_backbone(state_dict):  # DINO / iBOT: the papers evaluate the teacher
        backbone_state = teacher_backbone_state(state_dict, drop_pretrain_only=False)
        print('backbone evaluated: the teacher\'s (teacher.module.0.*)')
    try:
        load_backbone_weights(model, args.checkpoint, backbone_state)
    except PretrainedLoadingError as error:
        sys.exit(f'error: {error}')
    model.eval()
    results: Dict[str, object] = {'checkpoint': osp.abspath(args.checkpoint)}

    prototypes = load_stored_prototypes(state_dict)
    if prototypes is None:
        print('\n== No hierarchical prototypes in the checkpoint ==')
        stats = []
    else:
        rounds = '?' if prototypes.num_updates is None else prototypes.num_updates
        print(f'\n== Hierarchical prototypes ({rounds} clustering rounds, '
              f'{prototypes.num_samples} samples) ==')
        print(f'embedding space: {prototypes.describe_space()}')
        stats = cluster_size_stats(prototypes.as_result()) if prototypes.ready else []
        print(format_cluster_size_stats(stats))
        results['prototype_space'] = prototypes.space
        results['prototype_dim'] = prototypes.dim
        results['prototype_space_recorded'] = prototypes.recorded
    results['cluster_stats'] = stats

    # Read with labels (a folder read with_label=False for pre-training gets its classes;
    # a folder without class sub-folders has none).
    memory_loader, labelled = build_training_images_loader(
        cfg.train_dataloader.dataset, eval_pipeline, batch_size)
    results['labelled'] = labelled
    hierarchy = args.label_hierarchy or report.get('label_hierarchy')
    if hierarchy:  # checked now, as the other tools do, not after the long KNN step
        try:
            if labelled:
                dataset_label_levels(memory_loader.dataset, hierarchy)
            else:
                load_label_hierarchy(hierarchy)
        except (ValueError, TypeError, FileNotFoundError) as error:
            sys.exit(f'error: {error}')
    if not labelled:
        print('\nThe training images have no labels (a folder without class sub-folders): '
              'no KNN and no NMI / purity of the learned levels; the cluster statistics '
              'above are the report. Pre-train on class sub-folders (or give the data set '
              'an ann_file with labels) to score the levels.')
    elif report.get('query_dataset') is None:
        print('\nKNN skipped: the config has no report.query_dataset (labelled query '
              'images, e.g. a validation folder).')
    else:
        query_loader = build_extraction_loader(report['query_dataset'], batch_size)
        memory = extract_embeddings(model, memory_loader, model.embed, show_progress=False)
        queries = extract_embeddings(model, query_loader, model.embed, show_progress=False)
        memory_labels = _labels(memory_loader.dataset, 'get_gt_labels')
        query_labels = _labels(query_loader.dataset, 'get_gt_labels')
        num_classes = len(memory_loader.dataset.metainfo['classes'])
        knn = weighted_knn_classify(memory, memory_labels, queries, query_labels,
                                    num_classes, ks=report.get('knn_ks', (10, 20, 100, 200)))
        print(f'\n== KNN top-1 of the backbone ({len(memory)} train images as memory, '
              f'{len(queries)} test images, T=0.07) ==')
        print('  '.join(f'k={k}: {acc:.2f}%' for k, acc in knn.items()))
        results['knn_top1'] = {str(k): v for k, v in knn.items()}

    if labelled and prototypes is not None and prototypes.ready:
        if prototypes.num_samples != len(memory_loader.dataset):
            print(f'\nLearned levels not scored: the prototypes hold the assignments of '
                  f'{prototypes.num_samples} images, the training set has '
                  f'{len(memory_loader.dataset)}.')
        else:
            label_sets = {name: level.labels for name, level in dataset_label_levels(
                memory_loader.dataset, args.label_hierarchy
                or report.get('label_hierarchy')).items()}
            print('\n== Learned levels against the labels of the training images ==')
            widths = {name: max(11, len(name) + 4) for name in label_sets}
            header = ''.join(f'  {"NMI/" + name:<{widths[name]}}' for name in label_sets)
            print(f'{"level":>5} {"K":>6}{header}')
            scores: List[dict] = []
            for level, assign in enumerate(prototypes.im2cluster):
                row = {name: clustering_scores(labels.numpy(), assign.cpu().numpy())
                       for name, labels in label_sets.items()}
                scores.append(row)
                cells = ''.join(f'  {row[n]["nmi"]:>{widths[n]}.3f}' for n in label_sets)
                print(f'{level:>5} {prototypes.num_clusters[level]:>6}{cells}')
            results['level_scores'] = scores

    out = args.out or osp.splitext(args.checkpoint)[0] + '_report.json'
    with open(out, 'w') as f:
        json.dump(results, f, indent=2)
    print(f'\nCheckpoint: {osp.abspath(args.checkpoint)}\nReport:     {osp.abspath(out)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
