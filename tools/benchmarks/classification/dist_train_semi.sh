#!/usr/bin/env bash
# Semi-supervised fine-tuning (1% / 10% of ImageNet's labels) of a pre-trained backbone:
#   tools/benchmarks/classification/dist_train_semi.sh CONFIG PRETRAIN GPUS [train.py args]
# Write the label subsets first (once):
#   python tools/benchmarks/classification/make_label_subsets.py data/imagenet/meta/train.txt
# Same as dist_train.sh beside this file.
exec bash "$(dirname "$0")/../dist_train.sh" "$@"
