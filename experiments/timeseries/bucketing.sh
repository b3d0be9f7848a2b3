#!/usr/bin/env bash
# Variable-length batches: bucketed (sorted by length within windows of 16 batches) against plain shuffled
# batches, both cut to their own longest series, on the two shipped problems whose lengths vary.
# A bidirectional GRU of 128, 10 epochs, seeds 0 and 1, one job at a time so the timings do not share cores;
# the seeds interleave the two settings, so drifting load on the machine falls on both alike.
#   bash experiments/timeseries/bucketing.sh
#   DEVICE=cuda PY=python3 bash experiments/timeseries/bucketing.sh   # a GPU machine
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-outputs/multirun/timeseries_bucketing}
for entry in JapaneseVowels:1 PickupGestureWiimoteZ:4; do
  $PY -m src.run -m experiment=timeseries data.name=${entry%:*} data.patch=${entry#*:} trainer.epochs=10 \
      seed=${SEEDS:-0,1} data.bucket=true,false trainer.device=${DEVICE:-cpu} trainer.progress=false \
      hydra/launcher=packed hydra.launcher.jobs_per_device=1 hydra.sweep.dir=$OUT
done
$PY -m src.report $OUT > /dev/null
$PY experiments/timeseries/bucketing.py $OUT
