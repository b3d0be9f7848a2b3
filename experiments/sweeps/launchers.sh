#!/usr/bin/env bash
# The same sweep with Hydra's basic launcher and with joblib; wall times into a text file.
#   bash experiments/sweeps/launchers.sh               # CPU: 4 GRU-64 jobs, 1 epoch, joblib with 2 workers
#   DEVICE=cuda bash experiments/sweeps/launchers.sh   # GPU (issue 3): 16 LSTM 2x256 jobs, 2 epochs, joblib 4 and 8
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}  # PY=python3 where the packages are not in a venv (the GPU machine)
if [ "${DEVICE:-cpu}" = cpu ]; then
  sweep="data=fashion_mnist model=gru model.hidden_size=64 trainer.epochs=1 trainer.device=cpu seed=0,1,2,3"
  workers=${JOBS:-2}
  out=experiments/sweeps/launchers.txt
else
  sweep="data=fashion_mnist model=lstm model.hidden_size=256 model.num_layers=2 trainer.epochs=2 trainer.device=cuda seed=range(0,16)"
  workers=${JOBS:-4 8}
  out=experiments/sweeps/launchers_${DEVICE}.txt
fi
mkdir -p outputs
: > "$out"
echo "sweep: $sweep" >> "$out"
for launcher in basic $(for n in $workers; do echo joblib$n; done); do
  extra=""
  [ "$launcher" != basic ] && extra="hydra/launcher=joblib hydra.launcher.n_jobs=${launcher#joblib}"
  start=$(date +%s.%N)
  $PY -m src.run -m $sweep trainer.progress=false $extra hydra.sweep.dir=outputs/multirun/launchers_$launcher \
      > outputs/launchers_$launcher.log 2>&1
  end=$(date +%s.%N)
  echo "$launcher: $(python3 -c "print(round($end - $start, 1))") s" | tee -a "$out"
done
