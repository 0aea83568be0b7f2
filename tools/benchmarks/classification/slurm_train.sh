#!/usr/bin/env bash
# Slurm version of dist_train.sh beside this file (linear / fine-tune / semi-supervised):
#   GPUS=8 tools/benchmarks/classification/slurm_train.sh PARTITION JOB_NAME CONFIG PRETRAIN [train.py args]
# See tools/benchmarks/slurm_train.sh.
exec bash "$(dirname "$0")/../slurm_train.sh" "$@"
