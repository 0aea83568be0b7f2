"""SSL baselines vs their HIRL versions on Fashion-MNIST: pre-train for several seeds, compare.

One command reproduces each of the results tables of docs/en/results.md:

    python tools/benchmarks/classification/fashion_mnist_study.py --seeds 0 1 2 \
        --variants simclr hirl-simclr hirl-simclr-backbone
    python tools/benchmarks/classification/fashion_mnist_study.py --seeds 0 1 \
        --variants mocov2 hirl-mocov2
    python tools/benchmarks/classification/fashion_mnist_study.py --seeds 0 1 \
        --variants vit-random dino-vit hirl-dino-vit   # DINO's teacher vs the ViT untrained

A sweep of HIRL settings (one factor at a time, each point a variant of ``--sweep-base``
with config overrides, as ``tools/train.py --cfg-options`` takes them; several overrides
of one point are joined by ``;``):

    python tools/benchmarks/classification/fashion_mnist_study.py --seeds 0 1 \
        --variants simclr --sweep-base hirl-simclr \
        --sweep model.semantic_head.loss.loss_weight=0.5 custom_hooks.0.warmup_epochs=4 \
                "model.num_clusters=[50,10,5]" model.semantic_head.num_neg_path=20

For every seed and variant it pre-trains configs/study/<variant> through tools/train.py
(skipped when the final checkpoint exists), then evaluates the backbone on the training
subset (memory / training data) and the full Fashion-MNIST test split (queries) (for DINO /
iBOT the teacher's backbone, which the papers evaluate; ``vit-random`` is not trained):
weighted KNN top-1 (k = 20 and 200, T = 0.07), a linear probe on frozen features, and
hierarchical k-means of the training features with the HIRL levels' sizes (100 / 10 / 5),
scored by NMI against the 10 fine classes (K = 10) and the 5 coarse groups (K = 5). For
HIRL it also scores the learned prototypes' levels. Results: JSON per run, a summary JSON,
a markdown table (mean +- std over seeds) and the paired per-seed differences of every HIRL
variant from its baseline, in the work dir.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import re
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

import hirl_mm  # noqa: F401  (registers components, allows mmengine checkpoints)
from hirl_mm.clustering import HierarchicalKMeans
from hirl_mm.evaluation import (linear_probe_accuracy, normalized_mutual_info,
                                weighted_knn_classify)
from hirl_mm.models.utils.embedding import backbone_embedding
from hirl_mm.registry import MODELS
from hirl_mm.utils.feature_extraction import build_extraction_loader, extract_embeddings
from hirl_mm.utils.teacher_backbone import evaluated_backbone

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
VARIANTS = {
    'simclr': 'configs/study/simclr_tiny-resnet18_fashion-mnist.py',
    'hirl-simclr': 'configs/study/hirl-simclr_tiny-resnet18_fashion-mnist.py',
    'hirl-simclr-backbone': 'configs/study/hirl-simclr-backbone_tiny-resnet18_fashion-mnist.py',
    'mocov2': 'configs/study/mocov2_tiny-resnet18_fashion-mnist.py',
    'hirl-mocov2': 'configs/study/hirl-mocov2_tiny-resnet18_fashion-mnist.py',
    'dino-vit': 'configs/study/dino_tiny-vit_fashion-mnist.py',
    'hirl-dino-vit': 'configs/study/hirl-dino_tiny-vit_fashion-mnist.py',
    'mocov3-vit': 'configs/study/mocov3_tiny-vit_fashion-mnist.py',
    'hirl-mocov3-vit': 'configs/study/hirl-mocov3_tiny-vit_fashion-mnist.py',
    # The same ViT, not trained: evaluated as initialised with the run's seed.
    'vit-random': 'configs/study/dino_tiny-vit_fashion-mnist.py',
}
UNTRAINED = {'vit-random'}
# The baseline each HIRL variant is paired with (same data, seeds and SSL settings).
BASELINES = {'hirl-simclr': 'simclr', 'hirl-simclr-backbone': 'simclr',
             'hirl-mocov2': 'mocov2', 'dino-vit': 'vit-random', 'hirl-dino-vit': 'dino-vit',
             'hirl-mocov3-vit': 'mocov3-vit'}
METRICS = ['knn20', 'knn200', 'linear', 'kmeans_nmi_fine_k10', 'kmeans_nmi_coarse_k5',
           'proto_nmi_fine_l1', 'proto_nmi_coarse_l2']


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--variants', nargs='+', default=['simclr', 'hirl-simclr'],
                        choices=VARIANTS)
    parser.add_argument('--sweep', nargs='+', default=[], metavar='KEY=VALUE[;KEY=VALUE]',
                        help='sweep points: each is a variant of --sweep-base with these '
                        'config overrides (one factor at a time)')
    parser.add_argument('--sweep-base', default='hirl-simclr', choices=VARIANTS,
                        help='the variant the sweep points modify (default: hirl-simclr)')
    parser.add_argument('--work-dir', default='work_dirs/fashion_mnist_study')
    parser.add_argument('--num-per-class', type=int,
                        help='training images per class (default: the configs\' 800)')
    parser.add_argument('--eval-only', action='store_true',
                        help='do not train; evaluate the checkpoints that exist')
    return parser.parse_args()


def _overrides(seed: int, num_per_class: Optional[int]) -> Dict[str, Any]:
    """Config keys a run changes: its seed and, optionally, the training subset size."""
    options: Dict[str, Any] = {'randomness.seed': seed}
    if num_per_class:
        options['train_dataloader.dataset.num_per_class'] = num_per_class
    return options


def parse_sweep_point(point: str) -> Dict[str, Any]:
    """``'a.b=1;c=[1,2]'`` -> ``{'a.b': 1, 'c': [1, 2]}`` (values parsed as --cfg-options)."""
    overrides = {}
    for item in filter(None, (part.strip() for part in point.split(';'))):
        key, sep, value = item.partition('=')
        if not sep or not key:
            raise ValueError(f'Sweep point {point!r}: {item!r} is not KEY=VALUE.')
        overrides[key.strip()] = DictAction._parse_iterable(value.strip())
    return overrides


def sweep_variants(base: str, points: List[str]) -> Dict[str, Tuple[str, Dict[str, Any]]]:
    """Name, config and overrides of each sweep point, e.g. ``hirl-simclr[loss_weight=0.5]``.

    Args:
        base (str): The variant the points modify.
        points (List[str]): Sweep points (see :func:`parse_sweep_point`).

    Returns:
        dict: ``{variant name: (config, overrides)}``.
    """
    variants = {}
    for point in points:
        overrides = parse_sweep_point(point)
        label = ';'.join(f'{key.split(".")[-1]}={value}' for key, value in overrides.items())
        label = re.sub(r'[^A-Za-z0-9.=;-]+', '_', label.replace(' ', '')).strip('_')
        variants[f'{base}[{label}]'] = (VARIANTS[base], overrides)
    return variants


def _load_config(config: str, overrides: Dict[str, Any]) -> Config:
    cfg = Config.fromfile(osp.join(ROOT, config))
    cfg.merge_from_dict(overrides)
    return cfg


def _cli_value(value: Any) -> str:
    """A config value as ``--cfg-options`` parses it back (lists without spaces)."""
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(_cli_value(v) for v in value) + ']'
    return str(value)


def _checkpoint(config: str, work_dir: str, overrides: Dict[str, Any]) -> str:
    """The final checkpoint of a run."""
    max_epochs = _load_config(config, overrides).train_cfg.max_epochs
    return osp.join(work_dir, f'epoch_{max_epochs}.pth')


def _train(config: str, work_dir: str, overrides: Dict[str, Any]) -> str:
    """Pre-train one run unless its last checkpoint exists; returns the checkpoint path."""
    checkpoint = _checkpoint(config, work_dir, overrides)
    if not osp.isfile(checkpoint):
        cmd = [sys.executable, osp.join(ROOT, 'tools/train.py'), osp.join(ROOT, config),
               '--work-dir', work_dir, '--cfg-options',
               *[f'{key}={_cli_value(value)}' for key, value in overrides.items()]]
        print('+', ' '.join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)
    return checkpoint


def evaluate(config: str, checkpoint: Optional[str], seed: int,
             overrides: Optional[Dict[str, Any]] = None) -> Dict[str, float]:
    """All metrics of one pre-trained checkpoint (``None``: the model as initialised)."""
    cfg = _load_config(config, overrides or {})
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    if checkpoint is None:
        model.init_weights()
    else:
        load_checkpoint(model, checkpoint, map_location='cpu', logger='silent')
    model.eval()
    backbone = evaluated_backbone(model)
    train_set = dict(cfg.train_dataloader.dataset, pipeline=cfg.eval_pipeline)
    test_set = dict(train_set, split='test', num_per_class=None)
    loaders = {'train': build_extraction_loader(train_set, 512),
               'test': build_extraction_loader(test_set, 512)}
    embed = lambda x: backbone_embedding(backbone(x))  # noqa: E731
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


def paired_differences(runs: Dict[str, List[Dict[str, float]]],
                       baselines: Union[Dict[str, str], List[Tuple[str, str]]]) -> str:
    """A markdown table of each HIRL variant minus its baseline, seed by seed.

    Args:
        runs (dict): ``{variant: [result per seed]}``, results carrying ``seed``.
        baselines (dict | list): ``{variant: baseline variant}``, or ``(variant, compared
            variant)`` pairs (a sweep point is compared with the baseline and with the
            variant it modifies).

    Returns:
        str: One row per (variant, metric): mean difference, how many seeds improved, and
        the per-seed differences (in seed order).
    """
    lines = ['| variant - baseline | metric | mean diff | better on | per seed |',
             '|---|---|---|---|---|']
    for variant, base in (baselines.items() if isinstance(baselines, dict) else baselines):
        if variant not in runs or base not in runs:
            continue
        base_by_seed = {r['seed']: r for r in runs[base]}
        pairs = [(r, base_by_seed[r['seed']]) for r in runs[variant]
                 if r['seed'] in base_by_seed]
        for metric in METRICS[:5]:
            diffs = [(r['seed'], r[metric] - b[metric]) for r, b in pairs
                     if metric in r and metric in b]
            if not diffs:
                continue
            digits = 2 if metric.startswith(('knn', 'linear')) else 3
            values = [d for _, d in diffs]
            per_seed = ' / '.join(f'{d:+.{digits}f} (s{seed})' for seed, d in diffs)
            lines.append(f'| {variant} - {base} | {metric} | '
                         f'{statistics.mean(values):+.{digits}f} | '
                         f'{sum(d > 0 for d in values)}/{len(values)} | {per_seed} |')
    return '\n'.join(lines)


def main() -> int:
    args = parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    plan = {v: (VARIANTS[v], {}) for v in args.variants}
    baselines = [(v, BASELINES[v]) for v in args.variants if v in BASELINES]
    for name, spec in sweep_variants(args.sweep_base, args.sweep).items():
        plan[name] = spec
        baselines += [(name, BASELINES[args.sweep_base]), (name, args.sweep_base)]
    runs: Dict[str, List[Dict[str, float]]] = {v: [] for v in plan}
    for seed in args.seeds:
        for variant, (config, variant_overrides) in plan.items():
            work_dir = osp.abspath(osp.join(args.work_dir, f'{variant}_seed{seed}'))
            overrides = dict(_overrides(seed, args.num_per_class), **variant_overrides)
            if variant in UNTRAINED:
                os.makedirs(work_dir, exist_ok=True)
                checkpoint = None
            elif args.eval_only:
                checkpoint = _checkpoint(config, work_dir, overrides)
            else:
                checkpoint = _train(config, work_dir, overrides)
            result = evaluate(config, checkpoint, seed, overrides)
            result['seed'] = seed
            with open(osp.join(work_dir, 'study_eval.json'), 'w') as f:
                json.dump(result, f, indent=2)
            print(variant, seed, json.dumps(result), flush=True)
            runs[variant].append(result)
    table = summarize(runs) + '\n\n' + paired_differences(runs, baselines)
    with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(runs, f, indent=2)
    with open(osp.join(args.work_dir, 'summary.md'), 'w') as f:
        f.write(table + '\n')
    print('\n' + table)
    return 0


if __name__ == '__main__':
    sys.exit(main())
