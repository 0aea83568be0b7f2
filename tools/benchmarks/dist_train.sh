#!/usr/bin/env bash
# Shared by tools/benchmarks/{classification,mmdetection,mmsegmentation}/.
# Fine-tune a pre-trained backbone with an OpenMMLab downstream config.
#   tools/benchmarks/{mmdetection,mmsegmentation}/dist_train.sh CONFIG PRETRAIN GPUS [train.py args]
# PRETRAIN is a checkpoint of hirl_mm (or mmpretrain) pre-training; its backbone.* weights
# go into every module the config marks with init_cfg=dict(type='Pretrained',
# prefix='backbone.'), and the run stops unless they fit exactly. GPUS processes (gloo on
# a machine without GPU). Environment: NNODES, NODE_RANK, PORT, MASTER_ADDR, PYTHON.
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG PRETRAIN GPUS [tools/train.py args]" >&2
  exit 2
fi
CONFIG=$1
PRETRAIN=$2
GPUS=$3
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
exec bash "$ROOT/tools/dist_train.sh" "$CONFIG" "$GPUS" --pretrained "$PRETRAIN" "${@:4}"
