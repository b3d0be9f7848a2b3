#!/usr/bin/env bash
# The same unpruned study through Hydra's own Optuna sweeper (hydra-optuna-sweeper 1.3.0, lockstep batches
# of n_jobs trials, optuna < 3), for its slot use. Its own venv: it needs optuna 2 and SQLAlchemy 1.
#   bash experiments/studies/old_sweeper.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-outputs/studies}
VENV=${VENV:-$OUT/old-sweeper-venv}
SEED=${SEED:-0}
DATA=${DATA:-data=fashion_mnist data.train_size=2000 data.val_size=1000}
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "hydra-optuna-sweeper==1.3.0" "optuna>=2.10,<3" "sqlalchemy<2" "hydra-core>=1.3,<1.4"
    # Everything else (torch, the joblib launcher, seqlab) from the project's venv, after this venv's own.
    site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_path('purelib'))")
    echo "$site" > "$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_path('purelib'))")/seqlab-venv.pth"
fi
dir="$OUT/hydra-optuna-sweeper-$SEED"
mkdir -p "$dir"
started=$(date +%s.%N)
# shellcheck disable=SC2086
"$VENV/bin/python" -m src.run -m hydra/sweeper=optuna hydra/sweeper/sampler=tpe hydra.sweeper.direction=maximize \
    hydra.sweeper.n_trials=40 hydra.sweeper.n_jobs=2 "hydra.sweeper.sampler.seed=$SEED" \
    "model.cell=choice(rnn,gru,lstm)" "model.hidden_size=choice(32,64,128)" "model.num_layers=choice(1,2)" \
    "model.dropout=interval(0.0,0.5)" "optimizer.lr=tag(log,interval(3e-4,3e-2))" "data.batch_size=choice(64,128,256)" \
    trainer.epochs=8 $DATA hydra/launcher=joblib hydra.launcher.n_jobs=2 trainer.device=cpu trainer.progress=false \
    "hydra.sweep.dir=$dir" > "$dir.log" 2>&1 || echo "exit $?" >> "$dir.log"
.venv/bin/python -c "import sys, time; print('{\"wall_seconds\": %.1f}' % (time.time() - float(sys.argv[1])))" "$started" > "$dir/wall.json"
