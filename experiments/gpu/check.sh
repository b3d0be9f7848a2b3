#!/usr/bin/env bash
# Every GPU path of seqlab on one GPU, in at most 8 minutes: one line per path, results.json and summary.md in OUT.
#   bash experiments/gpu/check.sh                  # a GPU machine (after `make gpu-carry` where the files were made)
#   DEVICE=cpu SIZE=tiny bash experiments/gpu/check.sh   # the dry run: every step at tiny size on a CPU
# Where .venv/bin/python exists it is used; otherwise a venv over the machine's own Python and torch gets
# hydra-core, optuna and pytest from experiments/gpu/wheels (no network needed). See experiments/gpu/README.md.
set -uo pipefail  # no -e: a failing step must not hide the others' lines
cd "$(dirname "$0")/../.."
started=$(date +%s)
TOTAL_S=${TOTAL_S:-480}
if [ -z "${DEVICE:-}" ]; then
  DEVICE=$(nvidia-smi -L >/dev/null 2>&1 && echo cuda || echo cpu)
fi
SIZE=${SIZE:-full}
SCRATCH=${SCRATCH:-${TMPDIR:-/tmp}/seqlab-gpu-check}
mkdir -p "$SCRATCH"
if [ "$DEVICE" = cpu ]; then OUT=${OUT:-$(mktemp -d "$SCRATCH/out.XXXXXX")}; else OUT=${OUT:-experiments/gpu/results/$(date +%Y-%m-%d)}; fi
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
rm -rf "$OUT/logs" "$OUT/kernels.txt"  # this check's own files only
WORK=$(mktemp -d "$SCRATCH/work.XXXXXX")
[ -n "${KEEP_WORK:-}" ] || trap 'rm -rf "$WORK"' EXIT
export PYTHONPATH=.
# Tiny models on a CPU: one thread each is faster than two contending ones (and sums in a fixed order).
[ "$DEVICE" = cpu ] && export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

wheels=experiments/gpu/wheels
needs="hydra-core omegaconf optuna pytest hydra-joblib-launcher"
install() { "$1" -m pip install --quiet --no-index --find-links "$wheels" $needs; }
has_all() { "$1" -c "import hydra, optuna, pytest" 2>/dev/null; }
if [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
else
  # A fresh machine: bytecode and matplotlib's font cache written once, where they can be (the first steps fill them).
  export PYTHONPYCACHEPREFIX="$SCRATCH/pycache" MPLCONFIGDIR="$SCRATCH/mplconfig"
  if has_all python3; then
    PY=python3
  elif python3 -c "import sys; sys.exit(sys.prefix == sys.base_prefix)"; then
    PY=python3  # the machine's Python is a virtual environment already: into it
    echo "installing $needs from $wheels into $(python3 -c 'import sys; print(sys.prefix)')"
    install python3 || echo "FAILED: installing from $wheels (run make gpu-carry where the files were made)"
  else
    PY=$SCRATCH/venv/bin/python
    if ! has_all "$PY"; then
      echo "installing $needs from $wheels into $SCRATCH/venv, over the machine's Python and torch"
      # --without-pip: the machine's own pip, a system site package, installs into the venv.
      python3 -m venv --system-site-packages --without-pip "$SCRATCH/venv" && install "$PY" \
        || echo "FAILED: installing from $wheels (run make gpu-carry where the files were made)"
    fi
  fi
fi

# Fashion-MNIST's four IDX .gz files, linked into a fresh data root (decoded there, removed with WORK).
FASHION_DIR=${FASHION_DIR:-$( [ -f data/fashion_mnist/train-images-idx3-ubyte.gz ] && echo data/fashion_mnist || echo /usr/share/datasets/fashion-mnist)}
DATA_ROOT=$WORK/data
mkdir -p "$DATA_ROOT"
for file in "$FASHION_DIR"/*-ubyte.gz; do [ -f "$file" ] && ln -s "$(cd "$(dirname "$file")" && pwd)/$(basename "$file")" "$DATA_ROOT/"; done

budget=$(( TOTAL_S - ($(date +%s) - started) - 10 ))  # 10 s kept for the record
export DEVICE SIZE OUT WORK DATA_ROOT BUDGET_S=$budget
timeout -k 5 $(( budget + 5 )) "$PY" -m experiments.gpu.check
code=$?
[ $code = 124 ] || [ $code = 137 ] && echo "FAILED: the check ran past its $TOTAL_S s; $OUT/results.json holds the steps that ended"
exit $code
