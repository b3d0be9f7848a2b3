#!/usr/bin/env bash
# The time-series study: GRU and LSTM, one and two directions, on the eight UCR/UEA problems aeon ships,
# official train/test splits, a fifth of each training split held out for validation.
#   1. per problem, lr 1e-3/3e-3 x hidden 32/128 with a bidirectional GRU, seed 0: validation accuracy picks;
#   2. per problem, the chosen lr and hidden size for gru/lstm x uni/bidirectional over SEEDS.
#   bash experiments/timeseries/run.sh                          # 2-core CPU: two packed jobs at a time
#   DEVICE=cuda JOBS=8 PY=python3 bash experiments/timeseries/run.sh   # a GPU machine
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-0,1,2,3,4}
OUT=${OUT:-outputs/multirun/timeseries}
COMMON="experiment=timeseries trainer.device=${DEVICE:-cpu} trainer.progress=false ${EXTRA:-}"
LAUNCH="hydra/launcher=packed hydra.launcher.jobs_per_device=${JOBS:-2}"
# problem:patch. Patches keep every sequence under 75 steps; fixed beforehand from the lengths, not tuned.
PROBLEMS=${PROBLEMS:-"ACSF1:20 ArrowHead:8 BasicMotions:4 GunPoint:5 ItalyPowerDemand:1 JapaneseVowels:1 OSULeaf:8 PickupGestureWiimoteZ:8"}

if [ "${SKIP_SWEEP:-0}" != 1 ]; then
  for entry in $PROBLEMS; do
    $PY -m src.run -m $COMMON data.name=${entry%:*} data.patch=${entry#*:} optimizer.lr=1e-3,3e-3 \
        model.hidden_size=32,128 seed=0 $LAUNCH hydra.sweep.dir=${OUT}_sweep
  done
  $PY -m src.report ${OUT}_sweep > /dev/null
fi
for entry in $PROBLEMS; do
  chosen=$($PY experiments/timeseries/choose.py ${OUT}_sweep/summary.csv ${entry%:*})
  $PY -m src.run -m $COMMON data.name=${entry%:*} data.patch=${entry#*:} $chosen model=gru,lstm \
      model.bidirectional=false,true seed=$SEEDS $LAUNCH hydra.sweep.dir=$OUT
done
$PY -m src.report $OUT > /dev/null
$PY experiments/timeseries/compare.py $OUT/summary.csv experiments/timeseries
