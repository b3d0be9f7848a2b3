#!/usr/bin/env bash
# The same 4-job sweep with Hydra's basic launcher and with joblib; wall times into launchers.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
jobs=${JOBS:-2}
sweep="data=fashion_mnist model=gru model.hidden_size=64 trainer.epochs=1 trainer.device=cpu seed=0,1,2,3"
out=experiments/sweeps/launchers.txt
: > "$out"
for launcher in basic joblib; do
  extra=""
  [ "$launcher" = joblib ] && extra="hydra/launcher=joblib hydra.launcher.n_jobs=$jobs"
  start=$(date +%s.%N)
  .venv/bin/python -m src.run -m $sweep $extra hydra.sweep.dir=outputs/multirun/launchers_$launcher > /dev/null 2>&1
  end=$(date +%s.%N)
  echo "$launcher: $(echo "$end - $start" | bc) s" | tee -a "$out"
done
