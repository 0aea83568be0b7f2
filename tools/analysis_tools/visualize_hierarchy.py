"""Draw the hierarchy a HIRL checkpoint learned: a tree of its levels and a 2-D map.

Usage:
    python tools/analysis_tools/visualize_hierarchy.py CONFIG CHECKPOINT [--out FILE.png]
        [--embedding-out FILE.png] [--top 6] [--children 3] [--thumbs 4] [--per-row 10]
        [--sample 2000]
        [--label-hierarchy FILE.json]

The tree (``--out``, default ``<checkpoint>_hierarchy.png``, and the same as SVG beside
it) has the coarsest learned level at the top; with large K only the ``--top`` largest top
clusters and, under every node, its ``--children`` largest children are drawn, their trees
wrapped into rows of at most ``--per-row`` leaves. Every node shows its level and index,
its size (training images assigned to it), a strip of the training images nearest to its
centroid and, where the images are labelled, its majority label and purity, taken from the
label level whose class count is closest to the level's K (the fine classes, or a level of
the label hierarchy: ``--label-hierarchy``, ``report.label_hierarchy`` or the data set's
``metainfo['label_hierarchy']``). A folder without class sub-folders (pre-trained with
``CustomDataset(with_label=False)``) has no labels: the pictures then show the learned
levels only (no majority label, no purity, no label panels), and say so.

The map (``--embedding-out``, default ``<checkpoint>_embedding.png``) places a sample of the
training images by t-SNE (scikit-learn, if installed; else PCA) of their embeddings in the
prototypes' space, one panel coloured by each learned level with K <= 20 and one by each
label level. A JSON description of the drawn nodes is written next to the tree.

The images are those the prototypes clustered: the config's training set, read with its
eval pipeline (``report.eval_pipeline``, else the config's test / val pipeline, else the
clustering hook's ``extract_pipeline`` or its ImageNet default), embedded by the
pre-training model rebuilt from the config with the whole checkpoint loaded strictly.
"""
import argparse
import json
import os.path as osp
import sys
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

import hirl_mm  # noqa: F401  (registers components, allows mmengine checkpoints)
from hirl_mm.evaluation.checkpoint_reading import load_checkpoint_state
from hirl_mm.evaluation.feature_model import build_feature_model, load_backbone_weights
from hirl_mm.evaluation.hierarchy_scores import build_training_images_loader, tool_eval_pipeline
from hirl_mm.evaluation.label_hierarchy import dataset_label_levels
from hirl_mm.evaluation.pretrain_model import load_pretrain_model
from hirl_mm.evaluation.prototypes import load_stored_prototypes
from hirl_mm.utils.feature_extraction import extract_embeddings
from hirl_mm.utils.pretrained import PretrainedLoadingError
from hirl_mm.visualization import (build_tree, draw_embedding_map, draw_tree, embed_2d,
                                   level_sizes)

MAX_COLOURED_CLUSTERS = 20


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='HIRL checkpoint written by tools/train.py')
    parser.add_argument('--out', help='tree picture (default <checkpoint>_hierarchy.png)')
    parser.add_argument('--embedding-out',
                        help='2-D map picture (default <checkpoint>_embedding.png)')
    parser.add_argument('--top', type=int, default=6, help='largest top clusters drawn')
    parser.add_argument('--children', type=int, default=3,
                        help='largest children drawn under each node')
    parser.add_argument('--thumbs', type=int, default=4,
                        help='images nearest to the centroid shown per node')
    parser.add_argument('--per-row', type=int, default=10,
                        help='most leaves side by side: wider trees wrap into rows')
    parser.add_argument('--sample', type=int, default=2000, help='images in the 2-D map')
    parser.add_argument('--label-hierarchy', help='JSON label hierarchy of the training set')
    parser.add_argument('--batch-size', type=int, default=256)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def image_of(dataset, index: int) -> np.ndarray:
    """A data-set sample's packed image as ``[H, W, 3]`` floats in [0, 1] (RGB)."""
    image = dataset[index]['inputs']
    image = torch.as_tensor(image).float()
    if image.max() > 1:
        image = image / 255
    if image.shape[0] == 1:
        image = image.repeat(3, 1, 1)
    else:
        image = image[[2, 1, 0]]  # mmcv loads BGR
    return image.permute(1, 2, 0).numpy()


def _embedder(cfg: Config, state: Dict, checkpoint: str, recorded: bool, device: str):
    """The model and function that embed images in the prototypes' space."""
    if recorded:
        model = load_pretrain_model(cfg, state, checkpoint, device)
        return model, model.extract_clustering_embedding
    model = build_feature_model(cfg)  # legacy checkpoints clustered the pooled backbone
    load_backbone_weights(model, checkpoint, state)
    model.to(device).eval()
    return model, model.embed


def _save(fig, *paths: str) -> None:
    import matplotlib.pyplot as plt
    for path in paths:
        fig.savefig(path)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> dict:
    """Draw both pictures; returns what was drawn (nodes, paths, map method)."""
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if not osp.isfile(args.checkpoint):
        sys.exit(f'error: checkpoint {args.checkpoint} not found; train first.')
    init_default_scope(cfg.get('default_scope', 'hirl_mm'))
    state = load_checkpoint_state(args.checkpoint)
    stored = load_stored_prototypes(state)
    if stored is None or not stored.ready:
        sys.exit(f'error: {args.checkpoint} holds no clustered HIRL prototypes (not a HIRL '
                 f'checkpoint, or saved during the warm-up); draw a later checkpoint.')

    loader, labelled = build_training_images_loader(cfg.train_dataloader.dataset,
                                                    tool_eval_pipeline(cfg), args.batch_size)
    dataset = loader.dataset
    if len(dataset) != stored.num_samples:
        sys.exit(f'error: the prototypes cluster {stored.num_samples} images but the '
                 f'config\'s training set has {len(dataset)}; use the config the checkpoint '
                 f'was trained with.')
    hierarchy = args.label_hierarchy or (cfg.get('report') or {}).get('label_hierarchy')
    label_levels = {}
    if labelled:
        try:
            label_levels = dataset_label_levels(dataset, hierarchy)
        except (KeyError, AttributeError):  # an unlabelled data set: no majority labels
            if hierarchy:
                raise
    if not label_levels:
        print('The training images have no labels (e.g. a folder without class '
              'sub-folders): the pictures show the learned levels only, without majority '
              'labels, purity or label panels.')

    try:
        model, embed = _embedder(cfg, state, args.checkpoint, stored.recorded, args.device)
    except PretrainedLoadingError as error:  # a checkpoint of another config
        sys.exit(f'error: {error}')
    features = extract_embeddings(model, loader, embed, show_progress=False).cpu()
    trees = build_tree(stored.centroids, stored.parents, stored.im2cluster, features,
                       label_levels, top=args.top, children=args.children,
                       num_nearest=args.thumbs)
    stem = osp.splitext(args.checkpoint)[0]
    out = args.out or f'{stem}_hierarchy.png'
    title = (f'{osp.basename(args.checkpoint)}: learned levels K = '
             f'{" / ".join(map(str, reversed(stored.num_clusters)))} (coarsest on top), '
             f'{stored.num_samples} images, {stored.describe_space()} space')
    svg = osp.splitext(out)[0] + '.svg'
    _save(draw_tree(trees, stored.num_clusters, lambda i: image_of(dataset, i), title,
                    per_row=args.per_row), out, svg)

    sample = torch.randperm(len(features), generator=torch.Generator().manual_seed(0))
    sample = sample[:args.sample].sort().values
    coords, method = embed_2d(features[sample])
    colourings, names = {}, {}
    shown = [lvl for lvl, k in enumerate(stored.num_clusters) if k <= MAX_COLOURED_CLUSTERS]
    for level in shown or [len(stored.num_clusters) - 1]:
        key = f'learned level {level} (K={stored.num_clusters[level]})'
        colourings[key] = stored.im2cluster[level][sample]
    for name, level in label_levels.items():
        colourings[f'labels: {name} ({level.num_classes})'] = level.labels[sample]
        names[f'labels: {name} ({level.num_classes})'] = level.class_names
    embedding_out = args.embedding_out or f'{stem}_embedding.png'
    _save(draw_embedding_map(coords, colourings, names, method), embedding_out)

    drawn = dict(checkpoint=osp.abspath(args.checkpoint), tree_png=osp.abspath(out),
                 tree_svg=osp.abspath(svg),
                 embedding_png=osp.abspath(embedding_out), embedding_method=method,
                 labelled=bool(label_levels),
                 num_clusters=stored.num_clusters,
                 sizes=level_sizes(stored.im2cluster, stored.num_clusters),
                 label_levels=list(label_levels), panels=list(colourings),
                 trees=[tree.as_dict() for tree in trees])
    with open(osp.splitext(out)[0] + '.json', 'w') as f:
        json.dump(drawn, f, indent=1)
    print(f'Hierarchy tree: {drawn["tree_png"]} (zoomable: {drawn["tree_svg"]})\n'
          f'Embedding map ({method}): {drawn["embedding_png"]}')
    return drawn


if __name__ == '__main__':
    main()
