#!/usr/bin/env bash
# Clustering evaluation of a pre-trained backbone and of HIRL's learned hierarchy (see
# cluster_eval.py beside this file).
#   tools/benchmarks/classification/dist_cluster_eval.sh CONFIG CHECKPOINT GPUS [args...]
# e.g. tools/benchmarks/classification/dist_cluster_eval.sh \
#          configs/benchmarks/classification/clustering/kmeans_imagenet.py \
#          work_dirs/x/epoch_200.pth 8
# GPUS processes on this node (gloo on a machine without GPU).
# Env: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1), PYTHON (python).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG CHECKPOINT GPUS [cluster_eval.py args...]" >&2
  exit 2
fi
exec bash "$(dirname "$0")/dist_eval.sh" cluster_eval.py "$@"
