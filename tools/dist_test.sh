#!/usr/bin/env bash
# Distributed testing on one or more nodes with torchrun (torch.distributed.run).
#   bash tools/dist_test.sh CONFIG CHECKPOINT NPROC_PER_NODE [test.py args...]
# Env: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1), PYTHON (python).
# Without a GPU the processes use the gloo back end on CPU (see hirl_mm/utils/launch.py).
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT NPROC_PER_NODE [test.py args...]" >&2
    exit 2
fi
HERE="$(cd "$(dirname "$0")" && pwd)"
exec bash "$HERE/dist_run.sh" "$3" "$HERE/test.py" "$1" "$2" "${@:4}"
