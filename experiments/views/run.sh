#!/usr/bin/env bash
# The views study. CPU pilot (what ran here): GRU 64, 1 epoch, seed 0.
# Full version (issue 6; a GPU machine): PILOT=0 -> GRU and LSTM 128, 10 epochs, cosine schedule, 3 seeds.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${PILOT:-1}" = 1 ]; then
  grid="model=gru model.hidden_size=64 trainer.epochs=1 seed=0 trainer.device=cpu"
  dir=outputs/multirun/views_pilot
else
  grid="model=gru,lstm model.hidden_size=128 trainer.epochs=10 scheduler=cosine seed=0,1,2"
  dir=outputs/multirun/views
fi
.venv/bin/python -m src.run -m data=${DATASET:-fashion_mnist} data.view=rows,pixels,permuted $grid \
    trainer.progress=false hydra.sweep.dir=$dir
.venv/bin/python -m src.report $dir
