#!/usr/bin/env bash
# What the head does where the recurrent classifiers fall short: the bidirectional GRU of the main study
# (same lr, hidden size, patches and seeds) with the `mean` head instead of `last`, on the four problems
# furthest from ROCKET. Run after run.sh: it reads the sweep's choices.
#   bash experiments/timeseries/heads.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-0,1,2}
OUT=${OUT:-outputs/multirun/timeseries}
for entry in ACSF1:20 ArrowHead:8 OSULeaf:8 PickupGestureWiimoteZ:8; do
  chosen=$($PY experiments/timeseries/choose.py ${OUT}_sweep/summary.csv ${entry%:*})
  $PY -m src.run -m experiment=timeseries data.name=${entry%:*} data.patch=${entry#*:} $chosen model.head=mean \
      seed=$SEEDS trainer.device=${DEVICE:-cpu} trainer.progress=false \
      hydra/launcher=packed hydra.launcher.jobs_per_device=${JOBS:-2} hydra.sweep.dir=${OUT}_heads
done
$PY -m src.report ${OUT}_heads
