#!/usr/bin/env bash
# Create .venv/ in the repository root and install the tested stack plus hirl_mm (editable).
# Idempotent: re-running only installs what is missing. Used by `make setup` (and so by
# `make demo` / `make test` / CI) and `make setup-gpu`. Needs python3.10, 3.11 or 3.12
# (torch 2.13.0 has no build for older Pythons, numpy 1.26.4 none for newer ones).
#
#   bash tools/setup_env.sh          # the variant set up before, else CPU
#   bash tools/setup_env.sh --gpu    # GPU machines: faiss-gpu; mmcv with CUDA ops if nvcc
#   bash tools/setup_env.sh --cpu    # back to faiss-cpu and CPU ops
#
# The variant is recorded in .venv/.hirl_mm_variant, so a later `make test` / `make demo`
# (which re-run this script when requirements change) keeps faiss-gpu.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PYTHON_BIN=${PYTHON:-python3}
VARIANT_FILE="$VENV/.hirl_mm_variant"

# Seconds since the start on every step, so slow steps show in the log.
log() { printf '\n[setup %4ss] %s\n' "$SECONDS" "$*"; }

VARIANT=""
for arg in "$@"; do
  case "$arg" in
    --gpu) VARIANT=gpu ;;
    --cpu) VARIANT=cpu ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup_env.sh: unknown option $arg (--gpu, --cpu)" >&2; exit 2 ;;
  esac
done
if [ -z "$VARIANT" ]; then
  VARIANT=$(cat "$VARIANT_FILE" 2>/dev/null || echo cpu)
fi

# The pinned stack exists for Python 3.10 to 3.12 only: stop before creating anything.
PY_CHECK=${VENV}/bin/python
[ -x "$PY_CHECK" ] || PY_CHECK=$PYTHON_BIN
if ! "$PY_CHECK" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))'; then
  FOUND=$("$PY_CHECK" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none)
  echo "setup_env.sh: $PY_CHECK is Python $FOUND; the pinned stack needs Python 3.10, 3.11 or" \
       "3.12 (torch 2.13.0 has no build for 3.9 or older, numpy 1.26.4 none for 3.13+)." \
       "Run e.g. 'make setup PYTHON=python3.11' (remove .venv/ first if it was made with" \
       "another Python)." >&2
  exit 1
fi
FAISS=faiss-cpu
[ "$VARIANT" = gpu ] && FAISS=faiss-gpu
log "set-up variant: $VARIANT ($FAISS)"
# CUDA ops need nvcc (the CUDA toolkit matching torch.version.cuda); without it mmcv gets CPU
# ops, which is all that pre-training and the evaluation tools use. Detection transfer on
# GPUs needs the CUDA ops.
OPS=cpu
if [ "$VARIANT" = gpu ]; then
  if command -v nvcc >/dev/null; then
    OPS=cuda
  else
    log "nvcc not found: mmcv is built with CPU ops only. Pre-training and evaluation do" \
        "not need CUDA ops; mmdet transfer on GPUs does: install the CUDA toolkit of" \
        "torch.version.cuda and re-run."
  fi
fi
# What this run would install, and nothing else (used by the tests).
if [ -n "${HIRL_MM_SETUP_PLAN_ONLY:-}" ]; then
  echo "variant=$VARIANT faiss=$FAISS mmcv_ops=$OPS"
  exit 0
fi

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
MMCV_OK="import mmcv, mmcv.ops"
[ "$OPS" = cuda ] && MMCV_OK="$MMCV_OK; assert mmcv.ops.get_compiling_cuda_version() != 'not available'"
if ! "$PY" -c "$MMCV_OK" 2>/dev/null; then
  KEY=$("$PY" -c "import platform, sys, torch; print(f'py{sys.version_info[0]}.{sys.version_info[1]}_torch-{torch.__version__}_{platform.machine()}')")
  WHEEL_DIR="${HIRL_MM_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hirl_mm/wheels}/mmcv-${MMCV_VERSION}_${OPS}-ops_${KEY}"
  WHEEL=$(ls "$WHEEL_DIR"/mmcv-${MMCV_VERSION}-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$WHEEL" ]; then
    log "building mmcv ${MMCV_VERSION} with ${OPS} ops (about 10 minutes on 2 cores) into $WHEEL_DIR"
    TMP_WHEELS=$(mktemp -d)
    FORCE_CUDA=0
    [ "$OPS" = cuda ] && FORCE_CUDA=1
    MMCV_WITH_OPS=1 FORCE_CUDA=$FORCE_CUDA MAX_JOBS=${MAX_JOBS:-2} \
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
  "${UV[@]}" --reinstall-package mmcv "$WHEEL"
fi

log "OpenMMLab packages, runtime and test requirements"
if [ "$VARIANT" = gpu ]; then
  # faiss-gpu instead of faiss-cpu: both install the module `faiss`, so never both at once.
  RUNTIME=$(mktemp)
  grep -v '^faiss-cpu' requirements/runtime.txt > "$RUNTIME"
  "$VENV/bin/uv" pip uninstall --python "$PY" faiss-cpu 2>/dev/null || true
  "${UV[@]}" -r "$RUNTIME" -r requirements/optional.txt -r requirements/mminstall.txt \
    -r requirements/tests.txt
  rm -f "$RUNTIME"
else
  if "$PY" -m pip show -q faiss-gpu 2>/dev/null; then
    "$VENV/bin/uv" pip uninstall --python "$PY" faiss-gpu
  fi
  "${UV[@]}" -r requirements/runtime.txt -r requirements/mminstall.txt -r requirements/tests.txt
fi
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
if hasattr(faiss, 'get_num_gpus'):
    print('[setup] faiss sees', faiss.get_num_gpus(), 'GPU(s); torch sees',
          torch.cuda.device_count())
PY
echo "$VARIANT" > "$VARIANT_FILE"
touch "$VENV/.hirl_mm_setup_done"
log "done"
