#!/usr/bin/env bash
# The GPU figures (one CUDA machine): the benchmark for LSTM, GRU and RNN 2x256 at batch 256 and 64,
# the eager step and bf16 for comparison, and the step profile. bench.json files land in outputs/bench/<name>/.
set -uo pipefail  # no -e: one failing configuration must not hide the others' figures
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
bench() { name=$1; shift; echo "== $name: $*"; $PY -m src.bench data=fashion_mnist trainer.device=cuda "$@" \
  hydra.run.dir=outputs/bench/$name; }
bench lstm256_b256 bench.epochs=5 bench.step_check=300
bench lstm256_b64 data.batch_size=64 bench.epochs=3 bench.step_check=300
bench gru256_b256 model=gru bench.epochs=3
bench rnn256_b256 model=rnn bench.epochs=3
bench lstm256_b256_eager trainer.cuda_graph=never bench.which=framework bench.epochs=3
bench lstm256_b256_bf16 trainer.precision=bf16 bench.which=framework bench.epochs=3 bench.step_check=300
echo "== step profile"
$PY -m src.step_profile data=fashion_mnist trainer.device=cuda hydra.run.dir=outputs/bench/profile_lstm256_b256
