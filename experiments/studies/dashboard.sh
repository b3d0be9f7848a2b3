#!/usr/bin/env bash
# dashboard.png: optuna-dashboard's page of a pruned study, as headless Chromium shows it.
#   bash experiments/studies/dashboard.sh [journal]
set -euo pipefail
cd "$(dirname "$0")/../.."
JOURNAL=${1:-outputs/studies/hyperband-r4-0/optuna.journal}
PORT=${PORT:-8093}
.venv/bin/optuna-dashboard "$JOURNAL" --host 127.0.0.1 --port "$PORT" >/dev/null 2>&1 &
server=$!
trap 'kill $server' EXIT
until curl -sf "http://127.0.0.1:$PORT/api/studies" | grep -q study_id; do sleep 1; done
bash experiments/screenshot.sh "http://127.0.0.1:$PORT/dashboard/studies/0" experiments/studies/dashboard.png 1600,1400 20000
