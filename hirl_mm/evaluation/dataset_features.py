"""Embed a whole data set on every rank (or read it from the cache), with its labels."""
import os.path as osp
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from mmengine import dist
from mmengine.logging import print_log
from torch import Tensor, nn

from hirl_mm.utils.feature_extraction import build_extraction_loader, extract_embeddings
from .feature_cache import feature_cache_file, read_feature_cache, write_feature_cache
from .label_hierarchy import dataset_label_levels

__all__ = ['DatasetFeatures', 'extract_dataset_features']


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
        extra_levels (dict, optional): Levels of a label hierarchy above the fine one
            (name -> ``([N] int64 labels, number of classes)``), where the data set names
            one (``metainfo['label_hierarchy']``, see
            :mod:`hirl_mm.evaluation.label_hierarchy`); it replaces ``get_coarse_labels``.
        cache_file (str, optional): Where they were cached or read from.
        from_cache (bool): Whether they were read from the cache.
    """

    features: Tensor
    labels: Tensor
    num_classes: int
    coarse_labels: Optional[Tensor] = None
    num_coarse_classes: Optional[int] = None
    extra_levels: Optional[Dict[str, Tuple[Tensor, int]]] = None
    cache_file: Optional[str] = None
    from_cache: bool = False

    def label_levels(self) -> Dict[str, Tuple[Tensor, int]]:
        """``{'fine': (labels, C)}``, plus ``'coarse'`` where the data set has coarse labels,
        plus every level of its label hierarchy."""
        levels = {'fine': (self.labels, self.num_classes)}
        if self.coarse_labels is not None:
            levels['coarse'] = (self.coarse_labels, self.num_coarse_classes)
        levels.update(self.extra_levels or {})
        return levels

    def to_dict(self) -> dict:
        """What the cache stores (CPU tensors and numbers)."""
        return dict(features=self.features.cpu(), labels=self.labels.cpu(),
                    num_classes=self.num_classes,
                    coarse_labels=None if self.coarse_labels is None
                    else self.coarse_labels.cpu(),
                    num_coarse_classes=self.num_coarse_classes,
                    extra_levels={name: (labels.cpu(), num) for name, (labels, num)
                                  in (self.extra_levels or {}).items()})

    @classmethod
    def from_dict(cls, content: dict, cache_file: Optional[str] = None) -> 'DatasetFeatures':
        """The inverse of :meth:`to_dict` (for a cache hit)."""
        return cls(features=content['features'], labels=content['labels'],
                   num_classes=int(content['num_classes']),
                   coarse_labels=content.get('coarse_labels'),
                   num_coarse_classes=content.get('num_coarse_classes'),
                   extra_levels=content.get('extra_levels') or None,
                   cache_file=cache_file, from_cache=True)


def _dataset_labels(dataset) -> Tuple[Tensor, int, Optional[Tensor], Optional[int],
                                     Optional[Dict[str, Tuple[Tensor, int]]]]:
    """Fine labels and class count, coarse labels and count (``get_coarse_labels``) or the
    levels of the data set's label hierarchy (``metainfo['label_hierarchy']``)."""
    levels = dataset_label_levels(dataset)
    fine = levels.pop('fine')
    metainfo = getattr(dataset, 'metainfo', None) or {}
    if metainfo.get('label_hierarchy') is not None:
        extra = {name: (level.labels, level.num_classes) for name, level in levels.items()}
        return fine.labels, fine.num_classes, None, None, extra
    coarse = levels.get('coarse')
    return (fine.labels, fine.num_classes, None if coarse is None else coarse.labels,
            None if coarse is None else coarse.num_classes, None)


def _with_hierarchy_content(dataset_cfg: dict) -> dict:
    """The data set config with its label hierarchy file's content in place of its path,
    so that editing the file misses the cache (the cache stores the labels)."""
    metainfo = dict(dataset_cfg).get('metainfo') or {}
    spec = metainfo.get('label_hierarchy')
    if isinstance(spec, dict) and set(spec) == {'file'}:
        spec = spec['file']
    if not isinstance(spec, str) or not osp.isfile(spec):
        return dataset_cfg
    with open(spec) as f:
        content = f.read()
    return dict(dataset_cfg, metainfo=dict(metainfo, label_hierarchy=content))


def extract_dataset_features(model: nn.Module,
                             dataset_cfg: dict,
                             batch_size: int,
                             num_workers: int = 0,
                             name: str = 'features',
                             checkpoint: Optional[str] = None,
                             cache_dir: Optional[str] = None,
                             model_cfg: Optional[dict] = None,
                             show_progress: bool = True,
                             embed: Optional[Callable[[Tensor], Tensor]] = None
                             ) -> DatasetFeatures:
    """Embed a whole data set on every rank (or read it from the cache) with its labels.

    Every rank embeds its share of the data set; the rows are gathered by ``sample_idx``
    (:func:`hirl_mm.utils.feature_extraction.extract_embeddings`), so each rank returns
    all ``N`` features, L2-normalised. With ``cache_dir``, rank 0 writes them to
    :func:`~hirl_mm.evaluation.feature_cache.feature_cache_file` and a later call with the
    same checkpoint, name, data set and model config reads them instead of extracting
    (memory-mapped; on several nodes the folder must be shared).

    Args:
        model (nn.Module): The model, on its device, weights loaded; its
            ``data_preprocessor`` prepares the batches.
        dataset_cfg (dict): The data set config (eval pipeline).
        batch_size (int): Images per batch per process.
        num_workers (int): Data-loading workers per process.
        name (str): Role or split of the data set (and feature space), part of the cache
            file name.
        checkpoint (str, optional): The checkpoint (needed with ``cache_dir``).
        cache_dir (str, optional): Cache folder; None disables the cache.
        model_cfg (dict, optional): The config of what embeds the images, part of the
            cache key.
        show_progress (bool): Progress bar on rank 0.
        embed (Callable, optional): Maps a preprocessed ``[B, C, H, W]`` batch to
            ``[B, D]`` un-normalised embeddings. Defaults to ``model.embed``.

    Returns:
        DatasetFeatures: Features (on the model's device when extracted, on CPU when read
        from the cache) and labels (CPU).
    """
    cache_file = None
    if cache_dir:
        if checkpoint is None:
            raise ValueError('The feature cache is keyed by the checkpoint: pass checkpoint.')
        cache_file = feature_cache_file(cache_dir, checkpoint, name,
                                        _with_hierarchy_content(dataset_cfg), model_cfg)
        hit = [osp.isfile(cache_file)]
        dist.broadcast_object_list(hit)  # rank 0 decides: every rank extracts, or none
        if hit[0]:
            cached = DatasetFeatures.from_dict(read_feature_cache(cache_file), cache_file)
            print_log(f'Features of {name} ({tuple(cached.features.shape)}) read from '
                      f'the cache {cache_file}', logger='current')
            return cached

    loader = build_extraction_loader(dataset_cfg, batch_size, num_workers)
    start = time.time()
    # Kept where they were computed (the GPU with one): the protocols run there next, and
    # a data-set-sized host copy per process is avoided.
    features = extract_embeddings(model, loader, embed if embed is not None else model.embed,
                                  normalize=True, show_progress=show_progress)
    labels, num_classes, coarse, num_coarse, extra = _dataset_labels(loader.dataset)
    if labels.shape[0] != features.shape[0]:
        raise RuntimeError(f'{name}: {features.shape[0]} features but {labels.shape[0]} '
                           'labels.')
    print_log(f'Extracted {tuple(features.shape)} features of {name} in '
              f'{time.time() - start:.1f} s', logger='current')
    result = DatasetFeatures(features=features, labels=labels, num_classes=num_classes,
                             coarse_labels=coarse, num_coarse_classes=num_coarse,
                             extra_levels=extra,
                             cache_file=cache_file)
    if cache_file is not None:
        if dist.is_main_process():
            write_feature_cache(cache_file, result.to_dict())
            print_log(f'Features of {name} cached in {cache_file}', logger='current')
        dist.barrier()
    return result
