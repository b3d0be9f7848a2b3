#!/usr/bin/env bash
# What the recurrent-FCN recipe owes to each part: the published LSTM-FCN (experiment=series, no tuning) against
# the same recipe without its convolutional branch (an LSTM of 128), with the attention head, with the dimension shuffle, and
# trained on four fifths of the training split instead of all of it; 3 seeds, the test set scored once each.
#   bash experiments/timeseries/ablations.sh         # then: python -m src.report <each sweep dir>
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cpu}
OUT=${OUT:-outputs/ablations}
PROBLEMS=${PROBLEMS:-ArrowHead,GunPoint,ItalyPowerDemand}
common=(experiment=series "data.name=$PROBLEMS" seed=0,1,2 "trainer.device=$DEVICE"
    hydra/launcher=packed hydra.launcher.jobs_per_device=2 "hydra.sweep.subdir=\${hydra.job.num}")
run() {  # name, then the overrides that make the variant
    local name=$1
    shift
    [ -f "$OUT/$name/summary.csv" ] || $PY -m src.run -m "${common[@]}" "$@" "hydra.sweep.dir=$OUT/$name" >"$OUT/$name.log" 2>&1
}
mkdir -p "$OUT"
run published data.refit=true
run no_branch_128 data.refit=true model=lstm model.hidden_size=128 model.num_layers=1
run attention data.refit=true model.head=attention
run shuffle data.refit=true model.shuffle=true
run four_fifths data.refit=false
$PY experiments/timeseries/ablations.py "$OUT"
