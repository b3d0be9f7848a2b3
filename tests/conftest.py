"""Shared helpers: tiny IDX files written by the tests, configs composed and trained in-process, one
tiny trained run shared by the tests that only read what a run writes, and the real CLI in a process of its
own (forked with the libraries imported, or a fresh interpreter where start-up is what is tested)."""

import gzip
import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: one thread each, and the CLI runs they start inherit it, so
    # results computed in-process and in a subprocess sum in the same order.
    os.environ["OMP_NUM_THREADS"] = "1"

import torch  # noqa: E402 (after the thread count is set)
from cli_processes import CliProcess
from hydra.errors import InstantiationException  # noqa: E402
from omegaconf import DictConfig

from src.config.schema import register_schemas

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)  # in case a plugin imported torch before the variable was set

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# A small synthetic task that trains in about a second on two cores; tests add what they vary.
TINY = (
    "data=synthetic",
    "data.num_train=400",
    "data.val_size=100",
    "model.hidden_size=8",
    "trainer.epochs=1",
    "trainer.log_every_n_steps=2",
    "trainer.device=cpu",
)
register_schemas()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked gpu need a CUDA device: skipped without one (`pytest -m gpu` selects them on a GPU)."""
    if torch.cuda.is_available():
        return
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(pytest.mark.skip(reason="no CUDA: a GPU test (experiments/gpu/check.sh runs it)"))


IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def easy_images(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An easy 10-class task: class k is a bright bar on row 2k+4 of a noisy 28x28 image."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(10, (count,), generator=generator)
    images = torch.randint(0, 60, (count, 28, 28), generator=generator, dtype=torch.uint8)
    images[torch.arange(count), 2 * labels + 4, 3:25] = 230
    return images, labels


def idx_bytes(tensor: torch.Tensor) -> bytes:
    """IDX encoding of a uint8 tensor: magic (0, 0, 0x08, ndim), big-endian sizes, then the bytes."""
    header = struct.pack(">I", 0x0800 + tensor.dim()) + b"".join(struct.pack(">I", s) for s in tensor.shape)
    return header + tensor.to(torch.uint8).numpy().tobytes()


def write_idx(folder: Path, train: int = 600, test: int = 200, gz: bool = True) -> Path:
    """Write the four files of an MNIST-like dataset into folder (gzipped, as mirrors and Debian ship them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, count, seed in (("train", train, 1), ("test", test, 2)):
        images, labels = easy_images(count, seed)
        for name, tensor in zip(IDX_NAMES[split], (images, labels), strict=True):
            if gz:
                with gzip.open(folder / f"{name}.gz", "wb") as handle:
                    handle.write(idx_bytes(tensor))
            else:
                (folder / name).write_bytes(idx_bytes(tensor))
    return folder


@pytest.fixture
def idx_root(tmp_path: Path) -> Path:
    """A data root holding a tiny gzipped 'mnist' directly under it, as a user might drop it there."""
    return write_idx(tmp_path / "data")


def cli_environment(env: dict | None = None) -> dict:
    """The tests' environment for a CLI run, without HYDRA_FULL_ERROR (the CLI's one-line errors are tested)."""
    environment = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    environment.update(env or {})
    return environment


def start_cli(
    *overrides: str, module: str = "src.run", env: dict | None = None, new_session: bool = False
) -> CliProcess:
    """`python -m src.run overrides...` from the project root, started as a process of its own (forked with
    the libraries imported: cli_processes.py) for the tests that signal, kill or watch it."""
    return CliProcess(module, list(overrides), ROOT, cli_environment(env), new_session)


def run_cli(
    *overrides: str, module: str = "src.run", env: dict | None = None, fresh: bool = False
) -> subprocess.CompletedProcess:
    """`python -m src.run overrides...` from the project root, as a user types it, to its end. fresh: in a
    new interpreter, where how it starts is part of the test; otherwise forked (start_cli)."""
    if not fresh:
        return start_cli(*overrides, module=module, env=env).completed(timeout=600)
    return subprocess.run(
        [sys.executable, "-m", module, *overrides],
        cwd=ROOT,
        env=cli_environment(env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def compose_config(*overrides: str, config_name: str = "config") -> DictConfig:
    """conf/ composed as the CLI composes it (no run directory): the project's one way, src/config/composition.py."""
    from src.config.composition import compose_config as compose_project

    return compose_project(*overrides, config_name=config_name)


def train_in_process(run_dir: Path, *overrides: str, job_num: int | None = None) -> dict:
    """Compose and train one job in this process through the job code the CLI runs; its metrics."""
    from src.training.job import train_job

    return train_job(
        compose_config(*overrides), run_dir, parallel_jobs=None, job_num=job_num, process_started=time.perf_counter()
    )


def refused_line(run_dir: Path, overrides: list[str], error: type[BaseException]) -> str:
    """Compose and train the overrides in-process, expecting `error` to refuse them before any result is
    written (Hydra's InstantiationException wraps what a `_target_` raised); the one line the CLI prints."""
    from src.config.errors import ConfigError, one_line
    from src.training.job import train_job

    with pytest.raises((error, InstantiationException, ConfigError)) as raised:
        train_job(compose_config(*overrides), run_dir, None, None, time.perf_counter())
    # Hydra's refusals reach us wrapped: by instantiate, or by the composition's ConfigError naming the override.
    wrapped = isinstance(raised.value, InstantiationException) or (
        type(raised.value) is ConfigError and raised.value.__cause__ is not None and error is not ConfigError
    )
    refused = raised.value.__cause__ if wrapped else raised.value
    assert type(refused) is error
    assert not (run_dir / "metrics.json").exists()
    line = one_line(raised.value)
    assert "\n" not in line
    return line


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One trained tiny run (2 epochs), shared by the tests that only read what a run writes."""
    run_dir = tmp_path_factory.mktemp("tiny_run")
    train_in_process(run_dir, *TINY, "trainer.epochs=2", "model.hidden_size=16", "trainer.log_every_n_steps=5")
    return run_dir


def sweep_in_process(sweep_dir: Path, *overrides: str) -> list:
    """A multirun of src.run's task function in this process, as `python -m src.run -m ...` runs it
    (launcher, callbacks, per-job directories and logs); Hydra's JobReturns of each batch."""
    from hydra._internal.hydra import Hydra
    from hydra.core.global_hydra import GlobalHydra

    from src.run import main
    from src.sweeps.callbacks import report_unfinished

    hydra = Hydra.create_main_hydra_file_or_module(
        calling_file=str(ROOT / "src" / "run.py"), calling_module=None, config_path="../conf", job_name="run"
    )
    try:
        return hydra.multirun(
            config_name="config",
            task_function=main.__wrapped__,
            overrides=[*overrides, "hydra.mode=MULTIRUN", f"hydra.sweep.dir={sweep_dir}"],
            with_log_configuration=True,
        )
    finally:
        GlobalHydra().clear()
        report_unfinished()  # as the CLI's process does as it exits, after a multirun that raised


def sweep_rows(sweep_dir: Path, *overrides: str) -> list[dict]:
    """sweep_in_process, then the rows of the sweep report it wrote."""
    import csv

    sweep_in_process(sweep_dir, *overrides)
    return list(csv.DictReader((sweep_dir / "summary.csv").open()))


POSTGRES_URL = os.environ.get("SEQLAB_POSTGRES_URL", "postgresql://seqlab@127.0.0.1:5433/optuna")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server of `make postgres` (tests/postgres/server.sh): a test that needs it fails without it."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(POSTGRES_URL, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.OperationalError as error:
        pytest.fail(f"no PostgreSQL at {POSTGRES_URL} ({str(error).splitlines()[0]}): run `make postgres` first")
    finally:
        engine.dispose()
    return POSTGRES_URL


def unique_study_name(prefix: str) -> str:
    """A study name no other test (or earlier run) of the shared database uses."""
    import uuid

    return f"{prefix}-{uuid.uuid4().hex[:12]}"
