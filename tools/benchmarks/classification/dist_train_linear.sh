#!/usr/bin/env bash
# Linear probe (frozen backbone) of a pre-trained backbone, mmselfsup's script name:
#   tools/benchmarks/classification/dist_train_linear.sh CONFIG PRETRAIN GPUS [train.py args]
# e.g. tools/benchmarks/classification/dist_train_linear.sh \
#          configs/benchmarks/classification/imagenet/resnet50_linear-8xb32-steplr-100e_in1k.py \
#          work_dirs/x/epoch_200.pth 8
# Same as dist_train.sh beside this file.
exec bash "$(dirname "$0")/../dist_train.sh" "$@"
