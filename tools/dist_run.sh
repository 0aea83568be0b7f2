#!/usr/bin/env bash
# Run a tools script as NPROC_PER_NODE processes per node with torchrun
# (torch.distributed.run) and --launcher pytorch. Shared by dist_train.sh, dist_test.sh and
# the distributed evaluation scripts under tools/benchmarks/.
#   bash tools/dist_run.sh NPROC_PER_NODE SCRIPT [script args...]
# Env: NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1), PYTHON (python).
# Without a GPU the processes use the gloo back end on CPU (see hirl_mm/utils/launch.py).
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 NPROC_PER_NODE SCRIPT [script args...]" >&2
    exit 2
fi

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" \
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --nproc_per_node="$1" \
    --master_port="${PORT:-29500}" \
    "$2" --launcher pytorch "${@:3}"
