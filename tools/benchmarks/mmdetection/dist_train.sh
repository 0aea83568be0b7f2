#!/usr/bin/env bash
# mmdetection transfer of a pre-trained backbone (configs/benchmarks/mmdetection/):
#   tools/benchmarks/mmdetection/dist_train.sh CONFIG PRETRAIN GPUS [tools/train.py args]
# See tools/benchmarks/dist_train.sh.
exec bash "$(dirname "$0")/../dist_train.sh" "$@"
