#!/usr/bin/env bash
# Shared by tools/benchmarks/{classification,mmdetection,mmsegmentation}/.
# Slurm version of dist_train.sh beside this file.
#   GPUS=8 tools/benchmarks/{mmdetection,mmsegmentation}/slurm_train.sh PARTITION JOB_NAME CONFIG PRETRAIN [train.py args]
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 PARTITION JOB_NAME CONFIG PRETRAIN [tools/train.py args]" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
exec bash "$ROOT/tools/slurm_train.sh" "$1" "$2" "$3" --pretrained "$4" "${@:5}"
