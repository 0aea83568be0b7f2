#!/usr/bin/env bash
# Create .venv/ in the repository root and install the tested stack plus hirl_mm (editable).
# Idempotent: re-running only installs what is missing. Used by `make setup` (and so by
# `make demo` / `make test` / CI). Works on a fresh machine with only python3 >= 3.9.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PYTHON_BIN=${PYTHON:-python3}

log() { printf '\n[setup] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PYTHON_BIN" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip uv
# uv does not read pip's configuration, so a pip-configured local CPU-only torch wheel cannot
# shadow the registry's torch that matches torchvision's compiled ops.
UV=("$VENV/bin/uv" pip install --python "$PY")

log "torch / torchvision (pinned pair)"
"${UV[@]}" -r requirements/torch.txt
log "build requirements for mmcv"
"${UV[@]}" -r requirements/build.txt

if ! "$PY" -c "import mmcv, mmcv.ops" 2>/dev/null; then
  log "building mmcv 2.1.0 with CPU ops (about 10 minutes on 2 cores; cached afterwards)"
  MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
    "${UV[@]}" --no-build-isolation mmcv==2.1.0
fi

log "OpenMMLab packages, runtime and test requirements"
"${UV[@]}" -r requirements/runtime.txt -r requirements/mminstall.txt -r requirements/tests.txt
log "hirl_mm (editable)"
"${UV[@]}" --no-build-isolation --no-deps -e .

# The demo's real data set: Fashion-MNIST from Debian (MIT licence), installed offline.
FMNIST=/usr/share/datasets/fashion-mnist
if [ ! -e "$FMNIST/train-images-idx3-ubyte.gz" ] && [ -z "${HIRL_SKIP_DATA:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing Debian's dataset-fashion-mnist"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist
  else
    log "Fashion-MNIST is missing: run 'sudo apt-get install dataset-fashion-mnist' for the demo"
  fi
fi

"$PY" - <<'PY'
import faiss, mmcv, mmcv.ops, mmdet, mmengine, mmpretrain, mmseg, numpy, torch, torchvision
import hirl_mm
print('[setup] ok: torch', torch.__version__, 'torchvision', torchvision.__version__,
      'mmcv', mmcv.__version__, 'mmengine', mmengine.__version__, 'mmpretrain',
      mmpretrain.__version__, 'mmdet', mmdet.__version__, 'mmseg', mmseg.__version__,
      'faiss', faiss.__version__, 'numpy', numpy.__version__)
PY
touch "$VENV/.hirl_mm_setup_done"
