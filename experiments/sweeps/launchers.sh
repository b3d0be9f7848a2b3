#!/usr/bin/env bash
# The same sweep with Hydra's basic launcher and with joblib; wall times and where they went into a text file.
#   bash experiments/sweeps/launchers.sh               # CPU: 4 GRU-64 jobs, 1 epoch, joblib with 2 workers
#   DEVICE=cuda bash experiments/sweeps/launchers.sh   # GPU: 16 LSTM 2x256 jobs, 2 epochs, joblib 4 and 8
# EXTRA adds overrides to every job (EXTRA=trainer.cuda_graph=never: eager steps). A one-job warm-up sweep
# runs first, untimed, so that no timed sweep pays for a fresh machine's first run (bytecode, font and
# dataset caches), which only the first would pay.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}  # PY=python3 where the packages are not in a venv (the GPU machine)
if [ "${DEVICE:-cpu}" = cpu ]; then
  sweep="data=fashion_mnist model=gru model.hidden_size=64 trainer.epochs=1 trainer.device=cpu"
  seeds="seed=0,1,2,3"
  workers=${JOBS:-2}
  out=${OUT_FILE:-experiments/sweeps/launchers.txt}
else
  sweep="data=fashion_mnist model=lstm model.hidden_size=256 model.num_layers=2 trainer.epochs=2 trainer.device=cuda"
  seeds="seed=range(0,16)"
  workers=${JOBS:-4 8}
  out=${OUT_FILE:-experiments/sweeps/launchers_${DEVICE}.txt}
fi
sweep="$sweep trainer.progress=false ${EXTRA:-}"
mkdir -p outputs
$PY -m src.run -m $sweep seed=0 hydra.sweep.dir=outputs/multirun/launchers_warmup > outputs/launchers_warmup.log 2>&1
sweep="$sweep $seeds"
: > "$out"
echo "sweep: $sweep" >> "$out"
for launcher in basic $(for n in $workers; do echo joblib$n; done); do
  extra=""
  [ "$launcher" != basic ] && extra="hydra/launcher=joblib hydra.launcher.n_jobs=${launcher#joblib}"
  dir=outputs/multirun/launchers_$launcher
  rm -rf "$dir"
  start=$(date +%s.%N)
  $PY -m src.run -m $sweep $extra hydra.sweep.dir=$dir > outputs/launchers_$launcher.log 2>&1
  end=$(date +%s.%N)
  echo "$launcher: $(python3 -c "print(round($end - $start, 1))") s" | tee -a "$out"
  $PY experiments/sweeps/timeline.py "$dir" outputs/launchers_$launcher.log "$start" "$end" | sed 's/^/    /' | tee -a "$out"
done
