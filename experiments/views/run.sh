#!/usr/bin/env bash
# The views study. CPU pilot (what ran here): GRU 64, 1 epoch, seed 0.
# Full version (a GPU machine): PILOT=0 -> GRU and LSTM 128, cosine schedule, EPOCHS (10) epochs,
# SEEDS (0,1,2). Extra overrides go through EXTRA. What ran on the H100 (seed 0, 20 epochs, lr 2e-3):
#   PILOT=0 SEEDS=0 EPOCHS=20 EXTRA="optimizer.lr=2e-3 hydra/launcher=joblib hydra.launcher.n_jobs=3" PY=python3 \
#       bash experiments/views/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}  # PY=python3 where the packages are not in a venv (the GPU machine)
if [ "${PILOT:-1}" = 1 ]; then
  grid="model=gru model.hidden_size=64 trainer.epochs=1 seed=0 trainer.device=cpu"
  dir=outputs/multirun/views_pilot
else
  grid="model=gru,lstm model.hidden_size=128 trainer.epochs=${EPOCHS:-10} scheduler=cosine seed=${SEEDS:-0,1,2}"
  dir=outputs/multirun/views
fi
$PY -m src.run -m data=${DATASET:-fashion_mnist} data.view=rows,pixels,permuted $grid \
    trainer.progress=false ${EXTRA:-} hydra.sweep.dir=$dir
$PY -m src.report $dir
