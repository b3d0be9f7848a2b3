#!/usr/bin/env bash
# The recurrent-FCN table: per problem, `python -m src.tune` (a 16-trial study on validation, then 5 seeds of its
# pick trained on the whole training split, each scoring the test set once), then results.py gathers the table.
#   bash experiments/timeseries/tune.sh                                    # all eight problems, on the CPU
#   DEVICE=cuda PY=python3 OUT=outputs/series_gpu bash experiments/timeseries/tune.sh   # the same on a GPU
# A problem whose report.json exists is not run again.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
DEVICE=${DEVICE:-cpu}
OUT=${OUT:-outputs/series}
PROBLEMS=${PROBLEMS:-"ItalyPowerDemand GunPoint ArrowHead BasicMotions JapaneseVowels PickupGestureWiimoteZ OSULeaf ACSF1"}
# Long series are read in patches (fixed beforehand, never tuned); series of different lengths cannot be shuffled.
# ACSF1, the costliest on 2 cores, has a study of 10 trials instead of 16.
declare -A EXTRA=([ACSF1]="data.patch=4 hydra.sweeper.n_trials=10" [OSULeaf]="data.patch=2"
    [JapaneseVowels]="model.shuffle=false" [PickupGestureWiimoteZ]="model.shuffle=false")
mkdir -p "$OUT"
for problem in $PROBLEMS; do
    [ -f "$OUT/$problem/report.json" ] && continue
    # shellcheck disable=SC2086 (the extra overrides are words)
    $PY -m src.tune "data.name=$problem" ${EXTRA[$problem]:-} "trainer.device=$DEVICE" hydra.launcher.jobs_per_device=2 \
        --out "$OUT/$problem" >"$OUT/$problem.log" 2>&1 || echo "$problem: failed, see $OUT/$problem.log"
    tail -n 3 "$OUT/$problem/report.md" 2>/dev/null || true
done
$PY experiments/timeseries/results.py "$OUT"
