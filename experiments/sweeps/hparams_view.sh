#!/usr/bin/env bash
# hparams_view.png: TensorBoard's HPARAMS table of a small Fashion-MNIST sweep, as headless Chromium shows it.
#   bash experiments/sweeps/hparams_view.sh    # Debian: apt-get install chromium
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SWEEP=${SWEEP:-outputs/multirun/hparams_view}
PORT=${PORT:-6017}

# The sweep, unless SWEEP already holds it (its report written).
[ -f "$SWEEP/summary.csv" ] || "$PY" -m src.run -m data=fashion_mnist model=rnn,gru,lstm optimizer.lr=1e-3,3e-3 \
    model.hidden_size=32 trainer.epochs=1 trainer.device=cpu trainer.progress=false "hydra.sweep.dir=$SWEEP"

"$(dirname "$PY")/tensorboard" --logdir "$SWEEP" --host 127.0.0.1 --port "$PORT" --load_fast=false >/dev/null 2>&1 &
server=$!
trap 'kill $server' EXIT
until curl -sf "http://127.0.0.1:$PORT/data/runs" | grep -q "5_"; do sleep 1; done
bash experiments/screenshot.sh "http://127.0.0.1:$PORT/#hparams" experiments/sweeps/hparams_view.png 2100,520
