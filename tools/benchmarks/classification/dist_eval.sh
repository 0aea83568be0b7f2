#!/usr/bin/env bash
# Shared by dist_knn.sh and dist_cluster_eval.sh: run an evaluation script of this folder
# on GPUS processes per node with torchrun (torch.distributed.run).
#   tools/benchmarks/classification/dist_eval.sh SCRIPT CONFIG CHECKPOINT GPUS [args...]
# Env: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1), PYTHON (python).
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: $0 SCRIPT CONFIG CHECKPOINT GPUS [args...]" >&2
  exit 2
fi
HERE="$(cd "$(dirname "$0")" && pwd)"
exec bash "$HERE/../../dist_run.sh" "$4" "$HERE/$1" "$2" "$3" "${@:5}"
