#!/usr/bin/env bash
# Weighted k-NN evaluation of a pre-trained backbone (see knn.py beside this file).
#   tools/benchmarks/classification/dist_knn.sh CONFIG CHECKPOINT GPUS [knn.py args...]
# e.g. tools/benchmarks/classification/dist_knn.sh \
#          configs/benchmarks/classification/knn/knn_imagenet.py work_dirs/x/epoch_200.pth 8 \
#          --cache-dir work_dirs/features
# GPUS processes on this node (gloo on a machine without GPU).
# Env: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1), PYTHON (python).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT GPUS [knn.py args...]" >&2
  exit 2
fi
exec bash "$(dirname "$0")/dist_eval.sh" knn.py "$@"
