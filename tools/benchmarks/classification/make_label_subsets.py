"""Write the label subsets of the semi-supervised protocol (1% and 10% of ImageNet's labels).

Usage::

    python tools/benchmarks/classification/make_label_subsets.py data/imagenet/meta/train.txt
    # -> data/imagenet/meta/train_1percent.txt, data/imagenet/meta/train_10percent.txt
    python tools/benchmarks/classification/make_label_subsets.py ANN_FILE \\
        --percents 1 10 --seed 0 --out-dir data/imagenet/meta

ANN_FILE holds one ``relative/path label`` per line (mmpretrain's ImageNet / CustomDataset
annotation format). The subsets are deterministic for a seed, class balanced and
independent of the order of ANN_FILE's lines; see hirl_mm/datasets/label_subsets.py. The
semi-supervised configs (configs/benchmarks/classification/imagenet/*semi*) read
``meta/train_1percent.txt`` and ``meta/train_10percent.txt`` under their data root.
"""
import argparse
import sys
from collections import Counter
from typing import List, Optional

from hirl_mm.datasets.label_subsets import read_annotation_file, write_label_subsets


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write class-balanced label subsets of an annotation file')
    parser.add_argument('ann_file', help='annotation file with "path label" lines')
    parser.add_argument('--out-dir', help="output folder (default: ann_file's folder)")
    parser.add_argument('--percents', type=float, nargs='+', default=[1, 10],
                        help='percentages of the images to keep (default: 1 10)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the draw (default 0)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    written = write_label_subsets(args.ann_file, args.out_dir, args.percents, args.seed)
    total = len(read_annotation_file(args.ann_file))
    for percent, path in written.items():
        per_class = Counter(label for _, label in read_annotation_file(path))
        sizes = sorted(per_class.values())
        print(f'{percent:g}%: {sum(sizes)} of {total} images, {len(sizes)} classes, '
              f'{sizes[0]}-{sizes[-1]} per class -> {path}')
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (OSError, ValueError) as error:
        sys.exit(f'error: {error}')
