#!/usr/bin/env bash
# The cells study: rnn, gru, lstm x hidden 128/256 x lr 1e-3/3e-3 on Fashion-MNIST rows,
# 10 epochs, with a cosine learning-rate decay and dropout 0.2 between the two layers.
#   bash experiments/cells/run.sh                  # the full study: seeds 0,1,2 (36 jobs; a GPU machine)
#   SEEDS=0 bash experiments/cells/run.sh          # one seed (12 jobs)
#   PILOT=1 bash experiments/cells/run.sh          # the CPU pilot: hidden 128, 3 epochs, no schedule
# Extra overrides go through EXTRA. What ran on the H100 (134 s):
#   EXTRA="hydra/launcher=joblib hydra.launcher.n_jobs=8" PY=python3 bash experiments/cells/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}  # PY=python3 where the packages are not in a venv (the GPU machine)
if [ "${PILOT:-0}" = 1 ]; then
  grid="model.hidden_size=128 trainer.epochs=3 seed=0"
  dir=outputs/multirun/cells_pilot
else
  grid="model.hidden_size=128,256 trainer.epochs=10 seed=${SEEDS:-0,1,2} scheduler=cosine model.dropout=0.2"
  dir=outputs/multirun/cells${SEEDS:+_seeds$SEEDS}
fi
$PY -m src.run -m data=fashion_mnist model=rnn,gru,lstm optimizer.lr=1e-3,3e-3 $grid \
    trainer.progress=false ${EXTRA:-} hydra.sweep.dir=$dir
$PY -m src.report $dir
