#!/usr/bin/env bash
# Create .venv/ in the repository root and install the tested stack plus hirl_mm (editable).
# Idempotent: re-running only installs what is missing. Used by `make setup` (and so by
# `make demo` / `make test` / CI). Works on a fresh machine with only python3 >= 3.9.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PYTHON_BIN=${PYTHON:-python3}

# Seconds since the start on every step, so slow steps show in the log.
log() { printf '\n[setup %4ss] %s\n' "$SECONDS" "$*"; }

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

# mmcv has only sources on the registry and compiles its ops against the installed torch
# (about 10 minutes on 2 cores). The built wheel is kept outside the repository, keyed by
# everything it was built against, so every later set-up (a fresh clone too) installs it in
# seconds. uv's own cache does not help here: builds without isolation are not reused.
MMCV_VERSION=2.1.0
if ! "$PY" -c "import mmcv, mmcv.ops" 2>/dev/null; then
  KEY=$("$PY" -c "import platform, sys, torch; print(f'py{sys.version_info[0]}.{sys.version_info[1]}_torch-{torch.__version__}_{platform.machine()}')")
  WHEEL_DIR="${HIRL_MM_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hirl_mm/wheels}/mmcv-${MMCV_VERSION}_cpu-ops_${KEY}"
  WHEEL=$(ls "$WHEEL_DIR"/mmcv-${MMCV_VERSION}-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$WHEEL" ]; then
    log "building mmcv ${MMCV_VERSION} with CPU ops (about 10 minutes on 2 cores) into $WHEEL_DIR"
    TMP_WHEELS=$(mktemp -d)
    MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
      "$PY" -m pip wheel -q --no-build-isolation --no-deps --no-binary mmcv \
      -w "$TMP_WHEELS" "mmcv==${MMCV_VERSION}"
    mkdir -p "$WHEEL_DIR"
    # Moved in only once complete, so an interrupted build never leaves a broken wheel.
    for built in "$TMP_WHEELS"/mmcv-*.whl; do mv "$built" "$WHEEL_DIR/"; done
    rm -rf "$TMP_WHEELS"
    WHEEL=$(ls "$WHEEL_DIR"/mmcv-${MMCV_VERSION}-*.whl | head -n 1)
  else
    log "mmcv ${MMCV_VERSION}: the wheel built earlier for this python / torch ($WHEEL)"
  fi
  "${UV[@]}" "$WHEEL"
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

log "checking that the stack imports"
"$PY" - <<'PY'
import faiss, mmcv, mmcv.ops, mmdet, mmengine, mmpretrain, mmseg, numpy, torch, torchvision
import hirl_mm
print('[setup] ok: torch', torch.__version__, 'torchvision', torchvision.__version__,
      'mmcv', mmcv.__version__, 'mmengine', mmengine.__version__, 'mmpretrain',
      mmpretrain.__version__, 'mmdet', mmdet.__version__, 'mmseg', mmseg.__version__,
      'faiss', faiss.__version__, 'numpy', numpy.__version__)
PY
touch "$VENV/.hirl_mm_setup_done"
log "done"
