# seqlab: `make setup` then `make test` on a fresh machine; `make run` trains the main job.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_ARGS ?= data=fashion_mnist
BENCH_ARGS ?= data=fashion_mnist model.hidden_size=128 trainer.device=cpu bench.steps=30

.PHONY: setup data test test-slurm slurm slurm-stop postgres postgres-stop test-postgres lint run bench tensorboard clean gpu-wheels gpu-data gpu-carry gpu-check-dry

setup: $(VENV)/.installed data

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,sweep,timeseries]"
	touch $@

# Fashion-MNIST from Debian's package: the real dataset that needs no download at run time.
data:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then echo "fashion-mnist: installed"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else echo "fashion-mnist: run 'sudo apt-get install dataset-fashion-mnist' or put the IDX files in data/"; fi

# The tests marked slurm need a cluster: `make slurm`, then `make test-slurm`; those marked postgres a server:
# `make postgres`, then `make test-postgres`.
test:
	$(PY) -m pytest -q -n auto -m "not slurm and not postgres"

# A one-node Slurm cluster on this machine, with accounting (root: installs Debian's slurm-wlm, slurmdbd, munge
# and MariaDB once, writes /etc/slurm, starts the daemons). Idempotent; `make slurm-stop` stops it.
slurm:
	@tests/slurm/cluster.sh start

slurm-stop:
	@tests/slurm/cluster.sh stop

# A PostgreSQL server on 127.0.0.1:5433 for studies across machines (root: installs Debian's postgresql once,
# creates its own cluster, role seqlab and database optuna). Idempotent; `make postgres-stop` stops it.
postgres:
	@tests/postgres/server.sh start

postgres-stop:
	@tests/postgres/server.sh stop

# Studies on that server: trials in other processes, two sweep processes, a killed sweep, a killed trial (serial).
test-postgres:
	$(PY) -m pytest -q -p no:xdist -m postgres tests/test_postgres.py

# Sweeps through hydra/launcher=slurm on that cluster: jobs, failures, time limits, requeues (minutes, serial).
test-slurm:
	$(PY) -m pytest -q -p no:xdist -m "slurm" tests/test_slurm.py

lint:
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

run:
	$(PY) -m src.run $(RUN_ARGS)

# The reference DataLoader loop against the framework's loop (bench.json in outputs/bench/...).
bench:
	$(PY) -m src.bench $(BENCH_ARGS)

tensorboard:
	$(VENV)/bin/tensorboard --logdir outputs

clean:
	rm -rf outputs .pytest_cache

# The GPU check (experiments/gpu/README.md). A GPU machine with Python 3.12 and torch but no network gets what
# else the check needs from files carried with the repository: wheels for CPython 3.12 on manylinux x86_64
# (no torch, no numpy: the machine has them) and Fashion-MNIST's four IDX files. Both folders are ignored by git.
GPU_WHEELS := experiments/gpu/wheels
GPU_PLATFORM := --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
	--platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64
GPU_NEEDS := "hydra-core>=1.3,<1.4" "omegaconf>=2.3,<2.4" optuna hydra-joblib-launcher pytest

# antlr4-python3-runtime 4.9.3 (hydra-core's parser) is published as source only: built here, pure Python.
gpu-wheels:
	rm -rf $(GPU_WHEELS) && mkdir -p $(GPU_WHEELS)
	$(PY) -m pip wheel --quiet --no-deps -w $(GPU_WHEELS) antlr4-python3-runtime==4.9.3
	$(PY) -m pip download --quiet --find-links $(GPU_WHEELS) $(GPU_PLATFORM) -d $(GPU_WHEELS) $(GPU_NEEDS)
	rm -f $(GPU_WHEELS)/numpy-*.whl
	@du -sh $(GPU_WHEELS)

# Copied from Debian's dataset-fashion-mnist package (make data) unless they are there already.
FASHION_SRC ?= /usr/share/datasets/fashion-mnist
gpu-data:
	mkdir -p data/fashion_mnist
	for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do \
		[ -f data/fashion_mnist/$$name.gz ] || cp $(FASHION_SRC)/$$name.gz data/fashion_mnist/ || exit 1; done
	@du -sh data/fashion_mnist

gpu-carry: gpu-wheels gpu-data

# The same check on this machine's CPU at tiny size: every step runs (the GPU-only ones say so), in about 35 CPU seconds.
gpu-check-dry:
	DEVICE=cpu SIZE=tiny bash experiments/gpu/check.sh
