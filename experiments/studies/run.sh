#!/usr/bin/env bash
# The pruned study against the same study without pruning, over three sampler seeds, on this machine.
#   bash experiments/studies/run.sh            # the studies below, then figures.json and the table
#   SEEDS="0" STUDIES="hyperband-r4" bash experiments/studies/run.sh
# Each study: hparams_search=pruned (TPE over cell, width, depth, lr, dropout, batch size; 8 epochs at
# most; 40 trials; 2 at a time) on a fixed Fashion-MNIST subset, trials as joblib processes. `none` has
# no pruner; `hyperband-rN` is Hyperband with reduction factor N (brackets of rungs at epochs 1, N, ...);
# `halving-rN` is successive halving (one bracket: rungs at 1, N, ...), as hydra/sweeper/pruner=successive_halving.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-outputs/studies}
SEEDS=${SEEDS:-0 1 2}
STUDIES=${STUDIES:-none hyperband-r4 halving-r4}
DATA=${DATA:-data=fashion_mnist data.train_size=2000 data.val_size=1000}
mkdir -p "$OUT"
elapsed() { "$PY" -c "import sys, time; print(round(time.time() - float(sys.argv[1]), 1))" "$1"; }
for seed in $SEEDS; do
    for study in $STUDIES; do
        case $study in
            none) pruner=(hydra/sweeper/pruner=none) ;;
            hyperband-r*) pruner=(hydra/sweeper/pruner=hyperband "hydra.sweeper.pruner.reduction_factor=${study#hyperband-r}") ;;
            halving-r*) pruner=(hydra/sweeper/pruner=successive_halving "hydra.sweeper.pruner.reduction_factor=${study#halving-r}") ;;
            *) echo "error: STUDIES has $study: expected none, hyperband-rN or halving-rN" >&2; exit 1 ;;
        esac
        dir="$OUT/$study-$seed"
        [ -f "$dir/wall.json" ] && continue  # done: a rerun measures only what is missing
        started=$(date +%s.%N)
        mkdir -p "$dir"
        # shellcheck disable=SC2086
        "$PY" -m src.run -m hparams_search=pruned $DATA "${pruner[@]}" \
            "hydra.sweeper.sampler.seed=$seed" hydra/launcher=joblib hydra.launcher.n_jobs=2 \
            trainer.device=cpu trainer.progress=false "hydra.sweep.dir=$dir" > "$dir.log" 2>&1 || echo "exit $?" >> "$dir.log"
        echo "{\"wall_seconds\": $(elapsed "$started")}" > "$dir/wall.json"
    done
done
"$PY" experiments/studies/figures.py "$OUT" > experiments/studies/figures.json
"$PY" experiments/studies/figures.py "$OUT" --table
