#!/usr/bin/env bash
# The two reference recipes on Fashion-MNIST (MNIST: data=mnist, where it can be downloaded).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}  # PY=python3 where the packages are not in a venv (the GPU machine)
dataset=${DATASET:-fashion_mnist}
for recipe in lstm_rows_last lstm_rows_flatten; do
  $PY -m src.run experiment=$recipe data=$dataset trainer.device=${DEVICE:-auto} \
      trainer.progress=false ${EXTRA:-} hydra.run.dir=outputs/reference_recipes/${dataset}_$recipe
done
