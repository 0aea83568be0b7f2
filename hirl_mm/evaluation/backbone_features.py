"""What the frozen-feature protocols share (tools/benchmarks/classification/knn.py and
cluster_eval.py): the evaluation config, the backbone loaded exactly from a checkpoint,
distributed feature extraction with an optional on-disk cache, HIRL's learned prototypes,
and the JSON / table output.

Evaluation configs
------------------
The model is ``cfg.model.backbone`` (any mmpretrain backbone; its ``init_cfg`` is ignored)
with ``cfg.model.data_preprocessor`` (or mmpretrain's top-level ``data_preprocessor``;
default ``ClsDataPreprocessor``). The embedding of an image is the globally pooled last
stage (CNN) or the [CLS] token (ViT), L2-normalised, as HIRL clusters it
(:func:`hirl_mm.models.utils.embedding.backbone_embedding`). Each protocol reads its own
section (``knn_eval``, ``cluster_eval``, see the tools' docstrings) and falls back to the
config's ``train_dataloader`` / ``val_dataloader`` datasets, so an mmpretrain
classification config (e.g. a linear-probe config) works as is.

Checkpoints
-----------
Any checkpoint whose state dict holds the backbone under ``backbone.`` (hirl_mm or plain
mmpretrain pre-training, a classifier): every backbone tensor must be there and every
``backbone.*`` tensor must be used (:func:`hirl_mm.utils.pretrained.verify_pretrained_loading`),
otherwise the evaluation stops. HIRL checkpoints also hold the hierarchical prototypes
(``prototypes.centroids_l``, ``prototypes.parents_l``), read by :func:`read_prototypes`.
"""
import argparse
import copy
import hashlib
import json
import os
import os.path as osp
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as torch_dist
from mmengine import dist
from mmengine.config import Config, DictAction
from mmengine.device import get_device
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import _load_checkpoint
from torch import Tensor, nn

from hirl_mm.clustering import HierarchicalClusteringResult
from hirl_mm.models.utils.embedding import backbone_embedding
from hirl_mm.registry import MODELS
from hirl_mm.utils.feature_extraction import build_extraction_loader, extract_embeddings
from hirl_mm.utils.launch import (add_launcher_args, check_file_exists, set_local_rank_env,
                                  setup_launcher)
from hirl_mm.utils.pretrained import (BACKBONE_PREFIX, PretrainedLoadingError,
                                      verify_pretrained_loading)

__all__ = [
    'BackboneFeatureModel', 'DatasetFeatures', 'build_feature_model', 'load_checkpoint_state',
    'load_backbone_weights', 'read_prototypes', 'assign_to_prototypes', 'init_distributed',
    'feature_cache_file', 'extract_dataset_features', 'default_output_file', 'dump_json',
    'format_table', 'add_common_args', 'EvaluationSetup', 'setup_evaluation',
    'dataset_name', 'describe_dataset'
]

PROTOTYPES_PREFIX = 'prototypes.'
CACHE_FORMAT = 1  # bump when the cached content changes


class BackboneFeatureModel(BaseModel):
    """A backbone and its data preprocessor; ``embed`` gives one vector per image.

    Args:
        backbone (nn.Module): The backbone.
        data_preprocessor (nn.Module): Normalises and batches the inputs.
    """

    def __init__(self, backbone: nn.Module, data_preprocessor: nn.Module) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.backbone = backbone

    def embed(self, inputs: Tensor) -> Tensor:
        """``[B, D]`` un-normalised embeddings of a preprocessed batch."""
        return backbone_embedding(self.backbone(inputs))

    def forward(self, inputs: Tensor, data_samples: Optional[list] = None,
                mode: str = 'tensor') -> Tensor:
        if mode != 'tensor':
            raise ValueError(f'{type(self).__name__} only embeds images (mode="tensor").')
        return self.embed(inputs)


def build_feature_model(cfg: Config) -> BackboneFeatureModel:
    """Build the backbone and data preprocessor named by an evaluation config.

    Args:
        cfg (Config): Needs ``model.backbone``; the preprocessor is
            ``model.data_preprocessor``, else the top-level ``data_preprocessor``, else a
            ``ClsDataPreprocessor`` with its defaults. Call within the config's default scope.

    Returns:
        BackboneFeatureModel: On CPU, with random weights (see :func:`load_backbone_weights`).
    """
    model_cfg = cfg.get('model') or {}
    if 'backbone' not in model_cfg:
        raise ValueError('The evaluation config needs model.backbone (e.g. mmpretrain\'s '
                         "dict(type='ResNet', depth=50)); see configs/benchmarks/"
                         'classification/knn/knn_imagenet.py.')
    backbone_cfg = copy.deepcopy(model_cfg['backbone'])
    backbone_cfg.pop('init_cfg', None)  # the weights come from the checkpoint, checked
    pre_cfg = model_cfg.get('data_preprocessor') or cfg.get('data_preprocessor') or {}
    pre_cfg = copy.deepcopy(dict(pre_cfg))
    pre_cfg.setdefault('type', 'ClsDataPreprocessor')
    return BackboneFeatureModel(MODELS.build(backbone_cfg), MODELS.build(pre_cfg))


def load_checkpoint_state(checkpoint: str) -> Dict[str, Tensor]:
    """The state dict of a checkpoint (its ``state_dict`` entry, or the whole file).

    Args:
        checkpoint (str): Local path or URL.

    Returns:
        dict[str, Tensor]: On CPU.
    """
    loaded = _load_checkpoint(checkpoint, map_location='cpu')
    if not isinstance(loaded, dict):
        raise PretrainedLoadingError(f'{checkpoint} does not hold a state dict.')
    return loaded.get('state_dict', loaded)


def load_backbone_weights(model: BackboneFeatureModel, checkpoint: str,
                          state_dict: Optional[Dict[str, Tensor]] = None) -> int:
    """Load the ``backbone.*`` weights of ``checkpoint`` into ``model.backbone``, exactly.

    Args:
        model (BackboneFeatureModel): The model to fill.
        checkpoint (str): Path or URL of the checkpoint.
        state_dict (dict, optional): Its state dict if already loaded.

    Returns:
        int: The number of loaded tensors.

    Raises:
        PretrainedLoadingError: If a backbone key is missing, a ``backbone.*`` key is used
            by nothing, or a shape differs.
    """
    verify_pretrained_loading(model, checkpoint, ['backbone'])
    if state_dict is None:
        state_dict = load_checkpoint_state(checkpoint)
    backbone_state = {k[len(BACKBONE_PREFIX):]: v for k, v in state_dict.items()
                      if k.startswith(BACKBONE_PREFIX)}
    try:
        model.backbone.load_state_dict(backbone_state, strict=True)
    except RuntimeError as error:  # e.g. shapes differ: another width or depth
        raise PretrainedLoadingError(
            f'The backbone weights of {checkpoint} do not fit the configured backbone: '
            f'{error}') from error
    return len(backbone_state)


def read_prototypes(state_dict: Dict[str, Tensor]
                    ) -> Optional[Tuple[List[Tensor], List[Tensor]]]:
    """HIRL's hierarchical prototypes stored in a checkpoint, if it has any.

    Args:
        state_dict (dict): A checkpoint's state dict.

    Returns:
        tuple | None: ``(centroids, parents)``: ``[K_l, D]`` float32 per level, finest
        first, and ``[K_l]`` int64 per level but the top one. ``None`` when the checkpoint
        has no ``prototypes.centroids_0`` or was saved before the first clustering round
        (``prototypes.num_updates == 0``).
    """
    key = f'{PROTOTYPES_PREFIX}centroids_0'
    if key not in state_dict:
        return None
    updates = state_dict.get(f'{PROTOTYPES_PREFIX}num_updates')
    if updates is not None and int(updates) == 0:
        return None
    centroids, parents = [], []
    level = 0
    while f'{PROTOTYPES_PREFIX}centroids_{level}' in state_dict:
        centroids.append(state_dict[f'{PROTOTYPES_PREFIX}centroids_{level}'].float())
        level += 1
    for level in range(len(centroids) - 1):
        name = f'{PROTOTYPES_PREFIX}parents_{level}'
        if name not in state_dict:
            raise KeyError(f'The checkpoint has {len(centroids)} prototype levels but no '
                           f'{name}.')
        parents.append(state_dict[name].long())
    return centroids, parents


@torch.no_grad()
def assign_to_prototypes(features: Tensor, centroids: Sequence[Tensor],
                         parents: Sequence[Tensor],
                         chunk_size: int = 4096) -> HierarchicalClusteringResult:
    """Put each feature in its nearest level-0 prototype and lift it through the parents.

    Nearest means the largest dot product: cosine similarity for L2-normalised features
    and centroids, as in HIRL's iter-wise assignment.

    Args:
        features (Tensor): ``[N, D]`` (L2-normalised) features.
        centroids (Sequence[Tensor]): ``[K_l, D]`` per level, finest first.
        parents (Sequence[Tensor]): ``[K_l]`` per level but the top one.
        chunk_size (int): Rows per similarity product (memory ``chunk_size * K_0``).

    Returns:
        HierarchicalClusteringResult: The prototypes with ``im2cluster[l]`` = the level-l
        prototype of every feature, on ``features``' device.
    """
    if len(parents) != len(centroids) - 1:
        raise ValueError(f'{len(centroids)} levels need {len(centroids) - 1} parents, got '
                         f'{len(parents)}.')
    if features.shape[1] != centroids[0].shape[1]:
        raise ValueError(f'The features have {features.shape[1]} dimensions but the '
                         f'prototypes {centroids[0].shape[1]}.')
    device = features.device
    centroids = [c.to(device=device, dtype=torch.float32) for c in centroids]
    parents = [p.to(device=device, dtype=torch.long) for p in parents]
    nearest = torch.cat([
        (features[i:i + chunk_size].float() @ centroids[0].T).argmax(dim=1)
        for i in range(0, features.shape[0], chunk_size)
    ])
    im2cluster = [nearest]
    for parent in parents:
        im2cluster.append(parent[im2cluster[-1]])
    return HierarchicalClusteringResult(centroids=centroids, parents=parents,
                                        im2cluster=im2cluster)


def init_distributed(cfg: Config, launcher: str) -> None:
    """Initialise torch.distributed for ``launcher`` as tools/train.py does.

    On a machine without GPU, :func:`hirl_mm.utils.launch.setup_launcher` initialises gloo;
    with a GPU, mmengine's ``init_dist`` is called with ``env_cfg.dist_cfg`` (default NCCL),
    which also pins each process to its GPU. ``launcher='none'`` does nothing.
    """
    setup_launcher(cfg, launcher)
    if launcher == 'none' or (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    dist_cfg = dict((cfg.get('env_cfg') or {}).get('dist_cfg') or {})
    backend = dist_cfg.pop('backend', 'nccl')
    dist.init_dist(launcher, backend, **dist_cfg)


def _checkpoint_identity(checkpoint: str) -> Dict[str, Any]:
    """What identifies a checkpoint's content cheaply: real path, size, modification time."""
    if '://' in checkpoint or not osp.isfile(checkpoint):
        return dict(uri=checkpoint)
    stat = os.stat(checkpoint)
    return dict(path=osp.realpath(checkpoint), size=stat.st_size, mtime_ns=stat.st_mtime_ns)


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def feature_cache_file(cache_dir: str, checkpoint: str, name: str, dataset_cfg: dict,
                       model_cfg: Optional[dict] = None) -> str:
    """Where the features of one data set under one checkpoint are cached.

    The file name is ``<checkpoint name>_<name>_<hash>.pt``; the hash covers the
    checkpoint (real path, size, modification time), the data set config (pipeline
    included) and the model config, so changing any of them misses the cache.

    Args:
        cache_dir (str): The cache folder.
        checkpoint (str): The evaluated checkpoint.
        name (str): The data set's role or split, e.g. ``'train'`` or ``'val'``.
        dataset_cfg (dict): The data set config.
        model_cfg (dict, optional): The backbone / preprocessor config.

    Returns:
        str: The cache file's path.
    """
    stem = osp.splitext(osp.basename(checkpoint.rstrip('/')))[0] or 'checkpoint'
    key = _digest(dict(format=CACHE_FORMAT, checkpoint=_checkpoint_identity(checkpoint),
                       dataset=_plain(dataset_cfg), model=_plain(model_cfg)))
    return osp.join(cache_dir, f'{stem}_{name}_{key}.pt')


def _plain(cfg: Any) -> Any:
    """A ConfigDict / dict as plain Python containers (for hashing)."""
    if cfg is None:
        return None
    return cfg.to_dict() if hasattr(cfg, 'to_dict') else copy.deepcopy(cfg)


@dataclass
class DatasetFeatures:
    """Features and labels of one data set, in data set order.

    Attributes:
        features (Tensor): ``[N, D]`` float32, L2-normalised, in data-set order.
        labels (Tensor): ``[N]`` int64 class labels.
        num_classes (int): Number of classes (the data set's ``classes``, else max + 1).
        coarse_labels (Tensor, optional): ``[N]`` int64, where the data set has
            ``get_coarse_labels``.
        num_coarse_classes (int, optional): Number of coarse classes.
        cache_file (str, optional): Where they were cached or read from.
        from_cache (bool): Whether they were read from the cache.
    """

    features: Tensor
    labels: Tensor
    num_classes: int
    coarse_labels: Optional[Tensor] = None
    num_coarse_classes: Optional[int] = None
    cache_file: Optional[str] = None
    from_cache: bool = False

    def label_levels(self) -> Dict[str, Tuple[Tensor, int]]:
        """``{'fine': (labels, C)}``, plus ``'coarse'`` where the data set has coarse labels."""
        levels = {'fine': (self.labels, self.num_classes)}
        if self.coarse_labels is not None:
            levels['coarse'] = (self.coarse_labels, self.num_coarse_classes)
        return levels

    def to_dict(self) -> dict:
        return dict(format=CACHE_FORMAT, features=self.features.cpu(),
                    labels=self.labels.cpu(), num_classes=self.num_classes,
                    coarse_labels=None if self.coarse_labels is None
                    else self.coarse_labels.cpu(),
                    num_coarse_classes=self.num_coarse_classes)


def _num_classes(names: Optional[Sequence[str]], labels: Tensor) -> int:
    if names:
        return len(names)
    return int(labels.max()) + 1 if labels.numel() else 0


def _dataset_labels(dataset) -> Tuple[Tensor, int, Optional[Tensor], Optional[int]]:
    """Fine labels, class count and (if any) coarse labels and coarse class count."""
    labels = torch.as_tensor(np.asarray(dataset.get_gt_labels()), dtype=torch.long)
    metainfo = getattr(dataset, 'metainfo', {}) or {}
    num_classes = _num_classes(metainfo.get('classes'), labels)
    coarse, num_coarse = None, None
    if callable(getattr(dataset, 'get_coarse_labels', None)):
        coarse = torch.as_tensor(np.asarray(dataset.get_coarse_labels()), dtype=torch.long)
        num_coarse = _num_classes(metainfo.get('coarse_classes'), coarse)
    return labels, num_classes, coarse, num_coarse


def extract_dataset_features(model: BackboneFeatureModel,
                             dataset_cfg: dict,
                             batch_size: int,
                             num_workers: int = 0,
                             name: str = 'features',
                             checkpoint: Optional[str] = None,
                             cache_dir: Optional[str] = None,
                             model_cfg: Optional[dict] = None,
                             show_progress: bool = True) -> DatasetFeatures:
    """Embed a whole data set on every rank (or read it from the cache) with its labels.

    Every rank embeds its share of the data set; the rows are gathered by ``sample_idx``
    (:func:`hirl_mm.utils.feature_extraction.extract_embeddings`), so each rank returns
    all ``N`` features. With ``cache_dir``, rank 0 writes them to
    :func:`feature_cache_file` and a later call with the same checkpoint, data set and
    model reads them instead of extracting (memory-mapped; on several nodes the folder
    must be shared).

    Args:
        model (BackboneFeatureModel): The model, on its device, weights loaded.
        dataset_cfg (dict): The data set config (eval pipeline).
        batch_size (int): Images per batch per process.
        num_workers (int): Data-loading workers per process.
        name (str): Role or split of the data set, part of the cache file name.
        checkpoint (str, optional): The checkpoint (needed with ``cache_dir``).
        cache_dir (str, optional): Cache folder; None disables the cache.
        model_cfg (dict, optional): The model config, part of the cache key.
        show_progress (bool): Progress bar on rank 0.

    Returns:
        DatasetFeatures: Features (on the model's device when extracted, on CPU when read
        from the cache) and labels (CPU).
    """
    cache_file = None
    if cache_dir:
        if checkpoint is None:
            raise ValueError('The feature cache is keyed by the checkpoint: pass checkpoint.')
        cache_file = feature_cache_file(cache_dir, checkpoint, name, dataset_cfg, model_cfg)
        hit = [osp.isfile(cache_file)]
        dist.broadcast_object_list(hit)  # rank 0 decides: every rank extracts, or none
        if hit[0]:
            # Memory-mapped: processes that only wait for rank 0 barely touch the pages.
            cached = torch.load(cache_file, map_location='cpu', weights_only=True, mmap=True)
            if cached.get('format') != CACHE_FORMAT:
                raise RuntimeError(f'{cache_file} was written by another version of '
                                   'hirl_mm; delete it to extract the features again.')
            print_log(f'Features of {name} ({tuple(cached["features"].shape)}) read from '
                      f'the cache {cache_file}', logger='current')
            return DatasetFeatures(
                features=cached['features'], labels=cached['labels'],
                num_classes=int(cached['num_classes']),
                coarse_labels=cached.get('coarse_labels'),
                num_coarse_classes=cached.get('num_coarse_classes'),
                cache_file=cache_file, from_cache=True)

    loader = build_extraction_loader(dataset_cfg, batch_size, num_workers)
    start = time.time()
    # Kept where they were computed (the GPU with one): the protocols run there next, and
    # a data-set-sized host copy per process is avoided.
    features = extract_embeddings(model, loader, model.embed, normalize=True,
                                  show_progress=show_progress)
    labels, num_classes, coarse, num_coarse = _dataset_labels(loader.dataset)
    if labels.shape[0] != features.shape[0]:
        raise RuntimeError(f'{name}: {features.shape[0]} features but {labels.shape[0]} '
                           'labels.')
    print_log(f'Extracted {tuple(features.shape)} features of {name} in '
              f'{time.time() - start:.1f} s', logger='current')
    result = DatasetFeatures(features=features, labels=labels, num_classes=num_classes,
                             coarse_labels=coarse, num_coarse_classes=num_coarse,
                             cache_file=cache_file)
    if cache_file is not None:
        if dist.is_main_process():
            os.makedirs(cache_dir, exist_ok=True)
            tmp = f'{cache_file}.tmp{os.getpid()}'
            torch.save(result.to_dict(), tmp)
            os.replace(tmp, cache_file)  # atomic: readers never see half a file
            print_log(f'Features of {name} cached in {cache_file}', logger='current')
        dist.barrier()
    return result


def dataset_name(dataset_cfg: dict, role: str) -> str:
    """The data set's ``split`` if it names one (``'train'``, ``'val'``), else ``role``.

    Used in cache file names, so two protocols evaluating the same split share the cache.
    """
    split = dataset_cfg.get('split') if hasattr(dataset_cfg, 'get') else None
    return str(split) if split else role


def describe_dataset(dataset_cfg: dict) -> str:
    """A short name for a data set config: its type and split (or annotation file, or
    data root)."""
    parts = [str(dataset_cfg.get('type', 'dataset'))]
    for key in ('split', 'ann_file', 'data_root'):
        if dataset_cfg.get(key):
            parts.append(f'{key}={dataset_cfg[key]}')
            break
    return ' '.join(parts)


def default_output_file(checkpoint: str, protocol: str, work_dir: Optional[str] = None) -> str:
    """``<work_dir or checkpoint's folder>/<checkpoint name>_<protocol>.json``."""
    stem = osp.splitext(osp.basename(checkpoint.rstrip('/')))[0] or 'checkpoint'
    if work_dir:
        folder = work_dir
    elif '://' in checkpoint:
        folder = '.'
    else:
        folder = osp.dirname(osp.abspath(checkpoint))
    return osp.join(folder, f'{stem}_{protocol}.json')


def dump_json(results: dict, out_file: str) -> str:
    """Write ``results`` as indented JSON (creating the folder); returns the path."""
    folder = osp.dirname(osp.abspath(out_file))
    os.makedirs(folder, exist_ok=True)
    with open(out_file, 'w') as f:
        json.dump(results, f, indent=2)
        f.write('\n')
    return out_file


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
                 float_format: str = '{:.4f}') -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned.

    Args:
        headers (Sequence[str]): Column names.
        rows (Sequence[Sequence]): Cells; floats are formatted with ``float_format``,
            ``None`` is shown as ``-``.
        float_format (str): Format of float cells. Defaults to 4 decimals.

    Returns:
        str: Header, a rule and one line per row.
    """
    def cell(value: Any) -> str:
        if value is None:
            return '-'
        if isinstance(value, float):
            return float_format.format(value)
        return str(value)

    table = [list(map(str, headers))] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(headers))]

    def render(line: List[str]) -> str:
        return '  '.join(text.ljust(w) if i == 0 else text.rjust(w)
                         for i, (text, w) in enumerate(zip(line, widths))).rstrip()

    rule = '  '.join('-' * w for w in widths)
    return '\n'.join([render(table[0]), rule] + [render(line) for line in table[1:]])


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """The command-line arguments every frozen-feature protocol takes.

    ``config``, ``checkpoint``, ``--out``, ``--work-dir``, ``--cache-dir``,
    ``--batch-size``, ``--num-workers``, ``--cfg-options``, ``--launcher`` and
    ``--local-rank``.
    """
    parser.add_argument('config', help='evaluation config (model.backbone and data sets)')
    parser.add_argument('checkpoint', help='checkpoint holding the backbone under '
                        '"backbone." (hirl_mm or mmpretrain)')
    parser.add_argument('--out', help='JSON file for the results (default: '
                        '<work-dir or checkpoint folder>/<checkpoint name>_<protocol>.json)')
    parser.add_argument('--work-dir', help='folder for the default --out')
    parser.add_argument('--cache-dir', help='save the extracted features there, keyed by '
                        'checkpoint and data set, and read them back on the next run')
    parser.add_argument('--batch-size', type=int, help='images per batch per process '
                        '(overrides the config)')
    parser.add_argument('--num-workers', type=int, help='data-loading workers per process '
                        '(overrides the config)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    add_launcher_args(parser)


@dataclass
class EvaluationSetup:
    """What :func:`setup_evaluation` prepared.

    Attributes:
        cfg (Config): The merged config.
        model (BackboneFeatureModel): Backbone loaded from the checkpoint, on ``device``,
            in eval mode.
        state_dict (dict): The checkpoint's full state dict (CPU).
        device (str): Where the model runs.
        num_tensors (int): Number of backbone tensors loaded.
    """

    cfg: Config
    model: BackboneFeatureModel
    state_dict: Dict[str, Tensor]
    device: str
    num_tensors: int

    @property
    def model_cfg(self) -> dict:
        """The parts of the config that define the features (for the cache key)."""
        model = self.cfg.get('model') or {}
        return dict(backbone=_plain(model.get('backbone')),
                    data_preprocessor=_plain(model.get('data_preprocessor')
                                             or self.cfg.get('data_preprocessor')))


def setup_evaluation(args: argparse.Namespace) -> EvaluationSetup:
    """Load the config, start the processes, build the model and load the backbone.

    Args:
        args (argparse.Namespace): From a parser set up by :func:`add_common_args`.

    Returns:
        EvaluationSetup: Ready to extract features, on every rank.

    Raises:
        MissingInputError: If the config or a local checkpoint does not exist.
        PretrainedLoadingError: If the backbone weights do not fit exactly.
    """
    set_local_rank_env(args.local_rank)
    check_file_exists(args.config, 'Config file', 'Pass an evaluation config, e.g. '
                      'configs/benchmarks/classification/knn/knn_imagenet.py.')
    check_file_exists(args.checkpoint, 'Checkpoint', 'Pass the .pth file of a pre-training '
                      'run (hirl_mm or mmpretrain).')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    init_distributed(cfg, args.launcher)
    model = build_feature_model(cfg)
    state_dict = load_checkpoint_state(args.checkpoint)
    num_tensors = load_backbone_weights(model, args.checkpoint, state_dict)
    device = get_device()
    model.to(device)
    model.eval()
    print_log(f'Backbone weights of {args.checkpoint} fit exactly ({num_tensors} tensors); '
              f'{dist.get_world_size()} process(es) on {device}.', logger='current')
    return EvaluationSetup(cfg=cfg, model=model, state_dict=state_dict, device=device,
                           num_tensors=num_tensors)
