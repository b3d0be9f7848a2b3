# seqlab: `make setup` then `make test` on a fresh machine; `make run` trains the main job.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_ARGS ?= data=fashion_mnist
BENCH_ARGS ?= data=fashion_mnist model.hidden_size=128 trainer.device=cpu bench.steps=30

.PHONY: setup data test test-slurm slurm slurm-stop lint run bench tensorboard clean

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

# The tests marked slurm need a cluster: `make slurm`, then `make test-slurm`.
test:
	$(PY) -m pytest -q -n auto -m "not slurm"

# A one-node Slurm cluster on this machine, with accounting (root: installs Debian's slurm-wlm, slurmdbd, munge
# and MariaDB once, writes /etc/slurm, starts the daemons). Idempotent; `make slurm-stop` stops it.
slurm:
	@tests/slurm/cluster.sh start

slurm-stop:
	@tests/slurm/cluster.sh stop

# Sweeps through hydra/launcher=slurm on that cluster: jobs, failures, time limits, requeues (minutes, serial).
test-slurm:
	$(PY) -m pytest -q -p no:xdist -m slurm tests/test_slurm.py

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
