#!/usr/bin/env bash
# One sweep under several launchers; wall time of each whole command, and each job's fixed cost.
#   bash experiments/sweeps/packed.sh                 # CPU: 4 GRU-64 Fashion-MNIST jobs, then 16 tiny synthetic jobs
#   DEVICE=cuda bash experiments/sweeps/packed.sh     # GPU: 16 LSTM 2x256 jobs, 2 epochs; packed throughput 1-16 jobs
# PY picks the interpreter (PY=python3 where the packages are not in a venv); OUT_FILE the record.
# A one-job warm-up sweep runs first, untimed: no timed sweep pays for a fresh machine's caches.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cpu}
out=${OUT_FILE:-experiments/sweeps/packed_${DEVICE}.txt}
mkdir -p outputs/packed
: > "$out"

timed() {  # timed NAME OVERRIDES...: one sweep into outputs/packed/NAME; its wall time and fixed cost
  local name=$1; shift
  local dir=outputs/packed/$name
  rm -rf "$dir"
  local start end
  start=$(date +%s.%N)
  $PY -m src.run -m "$@" trainer.progress=false hydra.sweep.dir="$dir" > "outputs/packed/$name.log" 2>&1
  end=$(date +%s.%N)
  echo "$name: $(python3 -c "print(round($end - $start, 1))") s wall" | tee -a "$out"
  $PY experiments/sweeps/fixed_cost.py "$dir" | sed 's/^/    /' | tee -a "$out"
}

if [ "$DEVICE" = cpu ]; then
  fashion="data=fashion_mnist model=gru model.hidden_size=64 trainer.epochs=1 trainer.device=cpu"
  tiny="data=synthetic data.num_train=400 data.val_size=100 model.hidden_size=8 trainer.epochs=1 trainer.device=cpu"
  $PY -m src.run -m $fashion seed=0 hydra.sweep.dir=outputs/packed/warmup > outputs/packed/warmup.log 2>&1
  echo "sweep A: $fashion seed=0,1,2,3" >> "$out"
  timed fashion_basic $fashion seed=0,1,2,3
  timed fashion_joblib2 $fashion seed=0,1,2,3 hydra/launcher=joblib hydra.launcher.n_jobs=2
  timed fashion_packed $fashion seed=0,1,2,3 hydra/launcher=packed
  timed fashion_packed2 $fashion seed=0,1,2,3 hydra/launcher=packed hydra.launcher.jobs_per_device=2
  echo "sweep B: $tiny seed=range(0,16)" >> "$out"
  timed tiny_basic $tiny "seed=range(0,16)"
  timed tiny_joblib2 $tiny "seed=range(0,16)" hydra/launcher=joblib hydra.launcher.n_jobs=2
  timed tiny_packed $tiny "seed=range(0,16)" hydra/launcher=packed
  timed tiny_packed2 $tiny "seed=range(0,16)" hydra/launcher=packed hydra.launcher.jobs_per_device=2
else
  lstm="data=fashion_mnist model=lstm model.hidden_size=256 model.num_layers=2 trainer.epochs=2 trainer.device=cuda"
  $PY -m src.run -m $lstm seed=0 hydra.sweep.dir=outputs/packed/warmup > outputs/packed/warmup.log 2>&1
  echo "sweep: $lstm seed=range(0,16)" >> "$out"
  timed lstm_basic $lstm "seed=range(0,16)"
  timed lstm_joblib8 $lstm "seed=range(0,16)" hydra/launcher=joblib hydra.launcher.n_jobs=8
  timed lstm_packed8 $lstm "seed=range(0,16)" hydra/launcher=packed hydra.launcher.jobs_per_device=8
  timed lstm_packed16 $lstm "seed=range(0,16)" hydra/launcher=packed hydra.launcher.jobs_per_device=16
  # Aggregate training throughput of N jobs packed together: N x 55,000 samples x 2 epochs / wall time.
  for n in 1 4 8 16; do
    timed "lstm_together$n" $lstm "seed=range(0,$n)" hydra/launcher=packed hydra.launcher.jobs_per_device=$n
  done
  # joblib with 8 workers under NVIDIA's Multi-Process Service, where it can be started.
  if nvidia-cuda-mps-control -d 2>/dev/null; then
    timed lstm_joblib8_mps $lstm "seed=range(0,16)" hydra/launcher=joblib hydra.launcher.n_jobs=8
    echo quit | nvidia-cuda-mps-control
  else
    echo "NVIDIA MPS could not be started here" | tee -a "$out"
  fi
fi
