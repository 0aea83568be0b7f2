"""SimCLR vs HIRL-SimCLR on Fashion-MNIST: pre-train both for several seeds and compare.

One command reproduces the README's results table:

    python tools/benchmarks/classification/fashion_mnist_study.py --seeds 0 1 2

For every seed and variant it pre-trains configs/study/<variant> through tools/train.py
(skipped when the final checkpoint exists), then evaluates the backbone on the training
subset (memory / training data) and the full Fashion-MNIST test split (queries):
weighted KNN top-1 (k = 20 and 200, T = 0.07), a linear probe on frozen features, and
hierarchical k-means of the training features with the HIRL levels' sizes (100 / 10 / 5),
scored by NMI against the 10 fine classes (K = 10) and the 5 coarse groups (K = 5). For
HIRL it also scores the learned prototypes' levels. Results: JSON per run, a summary JSON
and a markdown table (mean +- std over seeds) in the work dir.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
from typing import Dict, List, Optional

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

import hirl_mm  # noqa: F401  (registers components, allows mmengine checkpoints)
from hirl_mm.clustering import HierarchicalKMeans
from hirl_mm.evaluation import (linear_probe_accuracy, normalized_mutual_info,
                                weighted_knn_classify)
from hirl_mm.models.utils.embedding import backbone_embedding
from hirl_mm.registry import MODELS
from hirl_mm.utils.feature_extraction import build_extraction_loader, extract_embeddings

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
VARIANTS = {
    'simclr': 'configs/study/simclr_tiny-resnet18_fashion-mnist.py',
    'hirl-simclr': 'configs/study/hirl-simclr_tiny-resnet18_fashion-mnist.py',
}
METRICS = ['knn20', 'knn200', 'linear', 'kmeans_nmi_fine_k10', 'kmeans_nmi_coarse_k5',
           'proto_nmi_fine_l1', 'proto_nmi_coarse_l2']


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument('--work-dir', default='work_dirs/fashion_mnist_study')
    parser.add_argument('--num-per-class', type=int,
                        help='training images per class (default: the configs\' 800)')
    parser.add_argument('--eval-only', action='store_true',
                        help='do not train; evaluate the checkpoints that exist')
    return parser.parse_args()


def _overrides(seed: int, num_per_class: Optional[int]) -> Dict[str, int]:
    """Config keys a run changes: its seed and, optionally, the training subset size."""
    options = {'randomness.seed': seed}
    if num_per_class:
        options['train_dataloader.dataset.num_per_class'] = num_per_class
    return options


def _load_config(config: str, overrides: Dict[str, int]) -> Config:
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.merge_from_dict(overrides)
    return cfg


def _train(config: str, work_dir: str, overrides: Dict[str, int]) -> str:
    """Pre-train one run unless its last checkpoint exists; returns the checkpoint path."""
    max_epochs = Config.fromfile(osp.join(ROOT, config)).train_cfg.max_epochs
    checkpoint = osp.join(work_dir, f'epoch_{max_epochs}.pth')
    if not osp.isfile(checkpoint):
        cmd = [sys.executable, osp.join(ROOT, 'tools/train.py'), osp.join(ROOT, config),
               '--work-dir', work_dir, '--cfg-options',
               *[f'{key}={value}' for key, value in overrides.items()]]
        print('+', ' '.join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)
    return checkpoint


def evaluate(config: str, checkpoint: str, seed: int,
             overrides: Optional[Dict[str, int]] = None) -> Dict[str, float]:
    """All metrics of one pre-trained checkpoint."""
    cfg = _load_config(config, overrides or {})
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    model.eval()
    train_set = dict(cfg.train_dataloader.dataset, pipeline=cfg.eval_pipeline)
    test_set = dict(train_set, split='test', num_per_class=None)
    loaders = {'train': build_extraction_loader(train_set, 512),
               'test': build_extraction_loader(test_set, 512)}
    embed = lambda x: backbone_embedding(model.backbone(x))  # noqa: E731
    feats = {k: extract_embeddings(model, v, embed, show_progress=False)
             for k, v in loaders.items()}
    fine = {k: torch.as_tensor(v.dataset.get_gt_labels()) for k, v in loaders.items()}
    coarse = torch.as_tensor(loaders['train'].dataset.get_coarse_labels())

    knn = weighted_knn_classify(feats['train'], fine['train'], feats['test'], fine['test'],
                                10, ks=(20, 200))
    result = dict(knn20=knn[20], knn200=knn[200],
                  linear=linear_probe_accuracy(feats['train'], fine['train'], feats['test'],
                                               fine['test'], 10))
    levels = HierarchicalKMeans([100, 10, 5], seed=seed)(feats['train']).im2cluster
    result['kmeans_nmi_fine_k10'] = normalized_mutual_info(fine['train'], levels[1])
    result['kmeans_nmi_coarse_k5'] = normalized_mutual_info(coarse, levels[2])
    prototypes = getattr(model, 'prototypes', None)
    if prototypes is not None and prototypes.ready:
        learned = prototypes.im2cluster
        result['proto_nmi_fine_l1'] = normalized_mutual_info(fine['train'], learned[1])
        result['proto_nmi_coarse_l2'] = normalized_mutual_info(coarse, learned[2])
    return {k: float(v) for k, v in result.items()}


def summarize(runs: Dict[str, List[Dict[str, float]]]) -> str:
    """A markdown table of mean +- std (sample std over seeds) per variant and metric."""
    header = ('| variant | seeds | KNN k=20 | KNN k=200 | linear | k-means NMI fine (K=10) '
              '| k-means NMI coarse (K=5) | learned NMI fine (level 1) '
              '| learned NMI coarse (level 2) |')
    lines = [header, '|' + '---|' * 9]
    for variant, results in runs.items():
        cells = []
        for metric in METRICS:
            values = [r[metric] for r in results if metric in r]
            if not values:
                cells.append('-')
                continue
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            scale, digits = (1, 2) if metric.startswith(('knn', 'linear')) else (1, 3)
            cells.append(f'{statistics.mean(values) * scale:.{digits}f} +- {std:.{digits}f}')
        lines.append(f'| {variant} | {len(results)} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def main() -> int:
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    runs: Dict[str, List[Dict[str, float]]] = {v: [] for v in args.variants}
    for seed in args.seeds:
        for variant in args.variants:
            work_dir = osp.abspath(osp.join(args.work_dir, f'{variant}_seed{seed}'))
            config = VARIANTS[variant]
            overrides = _overrides(seed, args.num_per_class)
            if args.eval_only:
                max_epochs = _load_config(config, overrides).train_cfg.max_epochs
                checkpoint = osp.join(work_dir, f'epoch_{max_epochs}.pth')
            else:
                checkpoint = _train(config, work_dir, overrides)
            result = evaluate(config, checkpoint, seed, overrides)
            result['seed'] = seed
            with open(osp.join(work_dir, 'study_eval.json'), 'w') as f:
                json.dump(result, f, indent=2)
            print(variant, seed, json.dumps(result), flush=True)
            runs[variant].append(result)
    table = summarize(runs)
    with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(runs, f, indent=2)
    with open(osp.join(args.work_dir, 'summary.md'), 'w') as f:
        f.write(table + '\n')
    print('\n' + table)
    return 0


if __name__ == '__main__':
    sys.exit(main())
