#!/usr/bin/env bash
# Distributed training on one or more nodes with torchrun (torch.distributed.run).
#   bash tools/dist_train.sh CONFIG NPROC_PER_NODE [train.py args...]
# Env: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1), PYTHON (python).
# Without a GPU the processes use the gloo back end on CPU (see hirl_mm/utils/launch.py).
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG NPROC_PER_NODE [train.py args...]" >&2
    exit 2
fi
HERE="$(cd "$(dirname "$0")" && pwd)"
exec bash "$HERE/dist_run.sh" "$2" "$HERE/train.py" "$1" "${@:3}"
