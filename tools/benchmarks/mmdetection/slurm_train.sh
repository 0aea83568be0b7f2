#!/usr/bin/env bash
# mmdetection transfer of a pre-trained backbone (configs/benchmarks/mmdetection/):
#   tools/benchmarks/mmdetection/slurm_train.sh PARTITION JOB_NAME CONFIG PRETRAIN [tools/train.py args]
# See tools/benchmarks/slurm_train.sh.
exec bash "$(dirname "$0")/../slurm_train.sh" "$@"
