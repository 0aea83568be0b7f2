#!/usr/bin/env bash
# mmsegmentation transfer of a pre-trained backbone (configs/benchmarks/mmsegmentation/):
#   tools/benchmarks/mmsegmentation/slurm_train.sh PARTITION JOB_NAME CONFIG PRETRAIN [tools/train.py args]
# See tools/benchmarks/slurm_train.sh.
exec bash "$(dirname "$0")/../slurm_train.sh" "$@"
