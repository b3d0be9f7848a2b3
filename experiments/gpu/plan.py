"""What the GPU check runs, at two sizes: `full` fits in 8 minutes on one H100/H200 (the timings in
experiments/performance/ and experiments/sweeps/), `tiny` dry-runs every step on a 2-core CPU in seconds.

Only overrides of `python -m src.run` live here, so that a test can compose every command of both sizes.
"""

from dataclasses import dataclass

# Fashion-MNIST rows through an LSTM 2x256, batch 256: 215 training steps an epoch, 0.29 s an epoch on an H100
# with the CUDA-graph step (experiments/performance/README.md).
LSTM_256 = ("model=lstm", "model.hidden_size=256", "model.num_layers=2")
# tests/test_preemption.py's long synthetic run: 47 steps an epoch, so a signal lands mid-epoch on a CPU.
SYNTHETIC_LONG = ("data=synthetic", "data.num_train=3200", "model.hidden_size=16")
SYNTHETIC_TINY = ("data=synthetic", "data.num_train=400", "data.val_size=100", "model.hidden_size=8")


@dataclass(frozen=True)
class Series:
    """The generated variable-length series of the bucketed run (data=arrays with lengths)."""

    train: int
    test: int
    shortest: int
    longest: int
    epochs: int
    hidden_size: int


@dataclass(frozen=True)
class Size:
    """Overrides and counts of every step at one size."""

    name: str
    fashion: tuple[str, ...]  # Fashion-MNIST from the data root (decoded once, then cached there)
    job: tuple[str, ...]  # one job of the sweeps (data, model, epochs)
    sweep_jobs: int
    jobs_per_device: int | None  # the packed sweep's; None: the launcher's default (8 per GPU)
    throughput_jobs: tuple[int, ...]
    profile: tuple[str, ...]  # the profiled packed run's job: fewer training batches than a whole epoch
    profile_jobs: int
    stop: tuple[str, ...]  # the run stopped by SIGTERM mid-epoch, resumed, and run again uninterrupted
    bf16: tuple[str, ...]
    api: tuple[str, ...]  # trained and reloaded through src.api
    series: Series
    study: tuple[str, ...]  # the pruned study: its trials' data and size
    study_trials: int
    study_in_flight: int


def fashion(root: str) -> tuple[str, ...]:
    return ("data=fashion_mnist", f"data.root={root}")


def size(name: str, data_root: str) -> Size:
    """The plan of `name` (full | tiny); data_root holds (or links to) Fashion-MNIST's four .gz files."""
    if name == "full":
        job = (*fashion(data_root), *LSTM_256, "trainer.epochs=2")
        return Size(
            name=name,
            fashion=fashion(data_root),
            job=job,
            sweep_jobs=16,
            jobs_per_device=None,
            throughput_jobs=(1, 4, 8, 16),
            # 10,000 training images (39 steps an epoch) instead of 55,000: a trace of about 100,000 kernels.
            profile=(*fashion(data_root), *LSTM_256, "trainer.epochs=1", "data.train_size=10000"),
            profile_jobs=4,
            stop=(*job, "model.dropout=0.2", "trainer.log_every_n_steps=20"),
            bf16=(*fashion(data_root), *LSTM_256, "trainer.epochs=1", "trainer.precision=bf16"),
            api=(*fashion(data_root), *LSTM_256, "trainer.epochs=1"),
            series=Series(train=4000, test=1000, shortest=20, longest=300, epochs=4, hidden_size=128),
            study=(*fashion(data_root), "trainer.epochs=2"),
            study_trials=16,
            study_in_flight=8,
        )
    if name == "tiny":
        job = (*SYNTHETIC_TINY, "trainer.epochs=1")
        return Size(
            name=name,
            fashion=(*fashion(data_root), "data.val_size=100"),  # a folder of a few hundred images will do
            job=job,
            sweep_jobs=2,
            jobs_per_device=2,
            throughput_jobs=(2,),
            profile=job,
            profile_jobs=2,
            stop=(*SYNTHETIC_LONG, "trainer.epochs=1", "model.dropout=0.2", "trainer.log_every_n_steps=10"),
            # GRU: an AVX2-only CPU has no bf16 LSTM kernel (experiments/performance/README.md).
            bf16=(*SYNTHETIC_TINY, "model=gru", "trainer.epochs=1", "trainer.precision=bf16"),
            api=job,
            series=Series(train=200, test=60, shortest=5, longest=20, epochs=2, hidden_size=8),
            study=(*SYNTHETIC_TINY, "trainer.epochs=2"),
            study_trials=4,
            study_in_flight=2,
        )
    raise ValueError(f"SIZE={name!r} is not allowed: expected full or tiny")


def on(device: str) -> tuple[str, ...]:
    """Overrides every command gets: the device, and no progress bars in the logs."""
    return (f"trainer.device={device}", "trainer.progress=false")


def graph_step(device: str) -> str:
    """The stop-and-resume run's step: the CUDA graph where there is one (an error if it cannot be used)."""
    return "trainer.cuda_graph=always" if device.startswith("cuda") else "trainer.cuda_graph=auto"


# The steps experiments/gpu/in_process.py runs in one process, in this order (one line each).
IN_PROCESS = (
    "Fashion-MNIST from the data root",
    "resume equals uninterrupted",
    "bucketed variable-length series",
    "bf16",
    "Run.predict and load_run",
)
