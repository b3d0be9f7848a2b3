#!/usr/bin/env bash
# The cells study. Full version (issue 6; a GPU machine): 10 epochs, 3 seeds, hidden 128/256.
#   PILOT=0 bash experiments/cells/run.sh
# CPU pilot (what ran here): hidden 128, 3 epochs, seed 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${PILOT:-1}" = 1 ]; then
  grid="model.hidden_size=128 trainer.epochs=3 seed=0 trainer.device=cpu"
  dir=outputs/multirun/cells_pilot
else
  grid="model.hidden_size=128,256 trainer.epochs=10 seed=0,1,2"
  dir=outputs/multirun/cells
fi
.venv/bin/python -m src.run -m data=fashion_mnist model=rnn,gru,lstm optimizer.lr=1e-3,3e-3 $grid \
    trainer.progress=false hydra.sweep.dir=$dir
.venv/bin/python -m src.report $dir
