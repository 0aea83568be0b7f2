"""Deterministic, seeded, class-balanced label subsets of an ImageNet-style annotation file.

The semi-supervised protocol fine-tunes on 1% or 10% of the labelled training images. The
subsets are written once as annotation files (``meta/train_1percent.txt``, ...) that the
configs under ``configs/benchmarks/classification/`` name, so every run (and every method
compared) sees the same images.

How a subset is drawn (:func:`class_balanced_subset`):

* the target size is ``round(fraction * N)``, but at least one image per class;
* the target is split over the classes as evenly as possible: every class gets
  ``target // C`` images, and the ``target % C`` left over go to classes drawn at random
  (seeded); a class with fewer images than its share gives all it has and the shortfall
  goes, again evenly, to the classes that still have images, so the size is exact;
* inside a class, images are taken in the order of one seeded permutation of the class's
  images sorted by path. The choice therefore does not depend on the order of the lines in
  the annotation file, and with the same seed a smaller subset is contained in a larger one
  whenever each class's share grows (always the case for 1% and 10% of ImageNet).

The subset keeps the annotation file's line order.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    'read_annotation_file', 'class_balanced_subset', 'subset_file_name',
    'write_label_subsets'
]


def read_annotation_file(ann_file: str) -> List[Tuple[str, int]]:
    """Read an ImageNet-style annotation file: one ``relative/path label`` per line.

    The label is the last space-separated field (so paths may contain spaces, as with
    mmpretrain's ``CustomDataset``); blank lines are skipped.

    Args:
        ann_file (str): The file, e.g. ``data/imagenet/meta/train.txt``.

    Returns:
        list[tuple[str, int]]: ``(path, label)`` per line, in file order.

    Raises:
        ValueError: On a line without an integer label, naming the line.
    """
    samples = []
    with open(ann_file) as f:
        for line_no, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(maxsplit=1)
            if len(parts) != 2:
                raise ValueError(f'{ann_file}:{line_no}: expected "path label", got {line!r}.')
            try:
                label = int(parts[1])
            except ValueError:
                raise ValueError(f'{ann_file}:{line_no}: the label {parts[1]!r} is not an '
                                 f'integer (expected "path label").') from None
            samples.append((parts[0], label))
    return samples


def _shares(counts: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray:
    """Split ``target`` over classes as evenly as their sizes allow (see module doc)."""
    shares = np.zeros_like(counts)
    open_classes = np.flatnonzero(counts > 0)
    remaining = target
    while remaining > 0 and open_classes.size:
        base, extra = divmod(remaining, open_classes.size)
        grant = np.full(open_classes.size, base, dtype=counts.dtype)
        if extra:
            grant[rng.choice(open_classes.size, size=extra, replace=False)] += 1
        room = counts[open_classes] - shares[open_classes]
        grant = np.minimum(grant, room)
        shares[open_classes] += grant
        remaining -= int(grant.sum())
        open_classes = open_classes[shares[open_classes] < counts[open_classes]]
    return shares


def class_balanced_subset(labels: Sequence[int],
                          fraction: float,
                          seed: int = 0,
                          keys: Optional[Sequence[str]] = None) -> np.ndarray:
    """Indices of a class-balanced random subset holding ``fraction`` of the samples.

    Args:
        labels (Sequence[int]): Label of every sample.
        fraction (float): Share of the samples to keep, in ``(0, 1]``.
        seed (int): Seed of the draw. Defaults to 0.
        keys (Sequence[str], optional): A sort key per sample (e.g. its path), so that the
            draw does not depend on the samples' order. Defaults to the sample order.

    Returns:
        np.ndarray: Sorted int64 indices of the kept samples: ``max(round(fraction * N), C)``
        of them (``C`` classes), per-class counts differing by at most one unless a class
        has too few samples.

    Raises:
        ValueError: If ``fraction`` is not in ``(0, 1]``, ``labels`` is empty or ``keys``
            has another length.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError('labels must be a non-empty 1-D sequence.')
    if not 0 < fraction <= 1:
        raise ValueError(f'fraction must lie in (0, 1], got {fraction}.')
    if keys is not None and len(keys) != labels.size:
        raise ValueError(f'keys has {len(keys)} entries for {labels.size} labels.')
    if seed < 0:
        raise ValueError(f'seed must be a non-negative integer, got {seed}.')
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    target = max(int(round(fraction * labels.size)), classes.size)
    shares = _shares(counts, target, np.random.default_rng(seed))
    # Samples grouped by class, ordered by key inside a class (both sorts are stable).
    order = np.arange(labels.size) if keys is None else np.argsort(
        np.asarray(keys, dtype=str), kind='stable')
    order = order[np.argsort(inverse[order], kind='stable')]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    keep = []
    for c in range(classes.size):
        members = order[starts[c]:starts[c] + counts[c]]
        # One stream per class, independent of the fraction: subsets nest across fractions.
        pick = np.random.default_rng([seed, c]).permutation(members.size)[:shares[c]]
        keep.append(members[pick])
    return np.sort(np.concatenate(keep))


def subset_file_name(ann_file: str, percent: float) -> str:
    """``train.txt`` and 1 -> ``train_1percent.txt`` (0.5 -> ``train_0.5percent.txt``)."""
    stem, ext = osp.splitext(osp.basename(ann_file))
    return f'{stem}_{percent:g}percent{ext or ".txt"}'


def write_label_subsets(ann_file: str,
                        out_dir: Optional[str] = None,
                        percents: Sequence[float] = (1, 10),
                        seed: int = 0) -> Dict[float, str]:
    """Write a class-balanced subset of ``ann_file`` for every percentage.

    Args:
        ann_file (str): The full annotation file (``path label`` lines).
        out_dir (str, optional): Where to write; defaults to ``ann_file``'s folder.
        percents (Sequence[float]): Percentages of the images to keep. Defaults to 1 and 10.
        seed (int): Seed of the draw (the same for every percentage). Defaults to 0.

    Returns:
        dict[float, str]: The written file of each percentage, e.g.
        ``{1: 'data/imagenet/meta/train_1percent.txt', ...}``.
    """
    samples = read_annotation_file(ann_file)
    if not samples:
        raise ValueError(f'{ann_file} holds no annotation.')
    paths = [path for path, _ in samples]
    labels = [label for _, label in samples]
    out_dir = out_dir or osp.dirname(osp.abspath(ann_file))
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    for percent in percents:
        keep = class_balanced_subset(labels, percent / 100.0, seed=seed, keys=paths)
        out_file = osp.join(out_dir, subset_file_name(ann_file, percent))
        with open(out_file, 'w') as f:
            f.writelines(f'{paths[i]} {labels[i]}\n' for i in keep)
        written[percent] = out_file
    return written
