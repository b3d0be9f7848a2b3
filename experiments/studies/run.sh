#!/usr/bin/env bash
# The pruned study against the same study without pruning, over three sampler seeds, on this machine.
#   bash experiments/studies/run.sh            # all six studies, then figures.json and the table
#   SEEDS="0" PRUNERS="hyperband" bash experiments/studies/run.sh
# Each study: hparams_search=pruned (TPE over cell, width, depth, lr, dropout, batch size; 8 epochs at
# most; 40 trials; 2 at a time) on a fixed Fashion-MNIST subset, trials as joblib processes.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-outputs/studies}
SEEDS=${SEEDS:-0 1 2}
PRUNERS=${PRUNERS:-none hyperband}
DATA=${DATA:-data=fashion_mnist data.train_size=2000 data.val_size=1000}
mkdir -p "$OUT"
elapsed() { "$PY" -c "import sys, time; print(round(time.time() - float(sys.argv[1]), 1))" "$1"; }
for seed in $SEEDS; do
    for pruner in $PRUNERS; do
        dir="$OUT/$pruner-$seed"
        [ -f "$dir/summary.md" ] && continue  # done: a rerun measures only what is missing
        started=$(date +%s.%N)
        mkdir -p "$dir"
        # shellcheck disable=SC2086
        "$PY" -m src.run -m hparams_search=pruned $DATA "hydra/sweeper/pruner=$pruner" \
            "hydra.sweeper.sampler.seed=$seed" hydra/launcher=joblib hydra.launcher.n_jobs=2 \
            trainer.device=cpu trainer.progress=false "hydra.sweep.dir=$dir" > "$dir.log" 2>&1 || echo "exit $?" >> "$dir.log"
        echo "{\"wall_seconds\": $(elapsed "$started")}" > "$dir/wall.json"
    done
done
"$PY" experiments/studies/figures.py "$OUT" > experiments/studies/figures.json
"$PY" experiments/studies/figures.py "$OUT" --table
