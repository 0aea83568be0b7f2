#!/usr/bin/env bash
# mmsegmentation transfer of a pre-trained backbone (configs/benchmarks/mmsegmentation/):
#   tools/benchmarks/mmsegmentation/dist_train.sh CONFIG PRETRAIN GPUS [tools/train.py args]
# See tools/benchmarks/dist_train.sh.
exec bash "$(dirname "$0")/../dist_train.sh" "$@"
