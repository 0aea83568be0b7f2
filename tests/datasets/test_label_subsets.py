"""Label subsets of the semi-supervised protocol: deterministic, seeded, class balanced."""
import importlib.util
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from hirl_mm.datasets.label_subsets import (class_balanced_subset, read_annotation_file,
                                            subset_file_name, write_label_subsets)

TOOL = Path(__file__).resolve().parents[2] / 'tools' / 'benchmarks' / 'classification' / \
    'make_label_subsets.py'


def _labels(sizes):
    """Class ``c`` repeated ``sizes[c]`` times, interleaved (not sorted by class)."""
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(sizes)])
    return np.random.default_rng(123).permutation(labels)


def _per_class(labels, keep):
    return Counter(np.asarray(labels)[keep].tolist())


def test_exact_size_and_balanced_across_classes():
    labels = _labels([50, 73, 90, 140, 61, 88, 100, 120, 77, 99])  # 898 images
    keep = class_balanced_subset(labels, 0.1, seed=0)
    assert len(keep) == round(0.1 * len(labels)) == 90
    assert len(set(keep.tolist())) == len(keep) and np.all(np.diff(keep) > 0)  # sorted
    counts = _per_class(labels, keep)
    assert len(counts) == 10 and max(counts.values()) - min(counts.values()) <= 1


def test_small_class_gives_all_and_shortfall_goes_to_others():
    labels = _labels([2, 100, 100, 100])
    keep = class_balanced_subset(labels, 0.5, seed=0)
    counts = _per_class(labels, keep)
    assert len(keep) == 151
    assert counts[0] == 2  # all it has
    assert sorted(counts[c] for c in (1, 2, 3)) == [49, 50, 50]


def test_at_least_one_image_per_class():
    labels = _labels([10, 10, 10, 10])
    keep = class_balanced_subset(labels, 0.01, seed=0)
    assert _per_class(labels, keep) == {0: 1, 1: 1, 2: 1, 3: 1}


def test_deterministic_for_a_seed_and_different_across_seeds():
    labels = _labels([40] * 5)
    first = class_balanced_subset(labels, 0.25, seed=3)
    assert np.array_equal(first, class_balanced_subset(labels, 0.25, seed=3))
    assert not np.array_equal(first, class_balanced_subset(labels, 0.25, seed=4))


def test_smaller_subset_nests_in_larger_one():
    labels = _labels([300 + 7 * c for c in range(20)])
    one = set(class_balanced_subset(labels, 0.01, seed=0).tolist())
    ten = set(class_balanced_subset(labels, 0.1, seed=0).tolist())
    assert one < ten


def test_choice_does_not_depend_on_line_order():
    paths = [f'class_{c}/img_{i:03d}.jpg' for c in range(6) for i in range(30)]
    labels = [int(p.split('/')[0].split('_')[1]) for p in paths]
    keep = class_balanced_subset(labels, 0.2, seed=0, keys=paths)
    order = list(range(len(paths)))
    random.Random(0).shuffle(order)
    shuffled_keep = class_balanced_subset([labels[i] for i in order], 0.2, seed=0,
                                          keys=[paths[i] for i in order])
    assert {paths[i] for i in keep} == {paths[order[i]] for i in shuffled_keep}


@pytest.mark.parametrize('kwargs', [dict(fraction=0), dict(fraction=1.5),
                                    dict(fraction=0.1, seed=-1)])
def test_invalid_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        class_balanced_subset([0, 1, 1], **kwargs)


def test_read_annotation_file(tmp_path):
    ann = tmp_path / 'train.txt'
    ann.write_text('a/b c.jpg 3\n\nd/e.jpg 0\n')
    assert read_annotation_file(str(ann)) == [('a/b c.jpg', 3), ('d/e.jpg', 0)]
    ann.write_text('a.jpg 1\nb.jpg x\n')
    with pytest.raises(ValueError, match='train.txt:2'):
        read_annotation_file(str(ann))


def test_subset_file_name():
    assert subset_file_name('meta/train.txt', 1) == 'train_1percent.txt'
    assert subset_file_name('train.txt', 10.0) == 'train_10percent.txt'
    assert subset_file_name('train.txt', 0.5) == 'train_0.5percent.txt'


def _write_ann(path: Path) -> list:
    lines = [f'n{c:03d}/img_{i:04d}.JPEG {c}' for c in range(8) for i in range(100 + 10 * c)]
    random.Random(1).shuffle(lines)
    path.write_text('\n'.join(lines) + '\n')
    return lines


def test_write_label_subsets_keeps_file_order(tmp_path):
    lines = _write_ann(tmp_path / 'train.txt')
    written = write_label_subsets(str(tmp_path / 'train.txt'), percents=(1, 10), seed=0)
    assert {p: Path(f).name for p, f in written.items()} == {
        1: 'train_1percent.txt', 10: 'train_10percent.txt'}
    for percent, path in written.items():
        subset = Path(path).read_text().splitlines()
        assert len(subset) == max(round(percent / 100 * len(lines)), 8)
        positions = [lines.index(line) for line in subset]
        assert positions == sorted(positions)  # a sub-sequence of the original file


def test_make_label_subsets_cli(tmp_path, capsys):
    _write_ann(tmp_path / 'train.txt')
    spec = importlib.util.spec_from_file_location('make_label_subsets', TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    out_dir = tmp_path / 'out'
    assert tool.main([str(tmp_path / 'train.txt'), '--out-dir', str(out_dir),
                      '--percents', '10', '--seed', '5']) == 0
    subset = (out_dir / 'train_10percent.txt').read_text()
    assert '10%: 108 of 1080 images, 8 classes, 13-14 per class' in capsys.readouterr().out
    # Same seed, same file: the tool is deterministic.
    tool.main([str(tmp_path / 'train.txt'), '--out-dir', str(tmp_path / 'again'),
               '--percents', '10', '--seed', '5'])
    assert (tmp_path / 'again' / 'train_10percent.txt').read_text() == subset
