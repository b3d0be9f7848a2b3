"""Preemption loses at most one step: a stop signal mid-epoch writes a checkpoint of that step, the run
exits 128+signum with one line, and trainer.resume=true ends where an uninterrupted run ends."""

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import TINY, metrics_of, start_cli, sweep_in_process, train_in_process
from src.runs.preemption import Preempted, stop_requested
from src.training import loop as train
from src.training.checkpoint_reader import read_checkpoint

# Dropout and a per-step schedule: resuming must restore the torch RNG and the scheduler mid-epoch too.
SHORT = (*TINY, "trainer.epochs=2", "model.dropout=0.2", "scheduler=onecycle")
# 47 steps an epoch: a signal sent as training starts lands mid-epoch. One thread in every process, so
# that runs in this process and in the CLI's sum in the same order.
LONG = (
    "data=synthetic",
    "data.num_train=3200",
    "model.hidden_size=16",
    "model.dropout=0.2",
    "trainer.epochs=2",
    "trainer.log_every_n_steps=10",
    "trainer.num_threads=1",
    "trainer.device=cpu",
)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Callable[[tuple[str, ...]], dict]:
    """The metrics of an uninterrupted run of some overrides, trained once in this module and shared."""
    runs: dict[tuple[str, ...], dict] = {}

    def metrics(overrides: tuple[str, ...]) -> dict:
        if overrides not in runs:
            runs[overrides] = train_in_process(tmp_path_factory.mktemp("uninterrupted"), *overrides)
        return runs[overrides]

    return metrics


def signal_at_step(monkeypatch: pytest.MonkeyPatch, signum: int, at_step: int) -> None:
    """Send this process signum at the logging step at_step, as a scheduler would mid-epoch."""
    check_loss = train.check_loss

    def check_and_signal(loss: float, max_loss: float | None, epoch: int, step: int) -> None:
        check_loss(loss, max_loss, epoch, step)
        if step == at_step:
            os.kill(os.getpid(), signum)  # to the process, as a scheduler sends it: any thread may receive it
            while stop_requested() is None:  # the main thread runs the handler: wait for that event
                time.sleep(0.001)

    monkeypatch.setattr(train, "check_loss", check_and_signal)


def same_results(got: dict, expected: dict) -> None:
    assert got["epochs_completed"] == expected["epochs_completed"] and got["status"] == "ok"
    for key in ("test_acc", "val_acc", "best_val_acc", "train_acc", "train_loss", "test_loss"):
        assert got[key] == expected[key], key  # the partial epoch's sums and every RNG restored exactly


@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM])
def test_a_stop_signal_mid_epoch_checkpoints_that_step_and_resume_ends_as_an_uninterrupted_run(
    tmp_path, monkeypatch, signum, uninterrupted
):
    expected = uninterrupted(SHORT)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)}
    signal_at_step(monkeypatch, signum, at_step=4)  # 6 steps an epoch: mid-epoch 1
    with pytest.raises(Preempted) as stopped:
        train_in_process(tmp_path / "resumed", *SHORT)
    assert stopped.value.code == 128 + signum and "\n" not in str(stopped.value)
    assert str(stopped.value).startswith(f"stopped by {signal.Signals(signum).name} after step 4 (epoch 1, batch 4 of")
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # the previous handlers are back
    state = read_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")["state"]
    assert (state["epoch"], state["step"], state["batch_in_epoch"]) == (0, 4, 4)
    monkeypatch.undo()
    same_results(train_in_process(tmp_path / "resumed", *SHORT, "trainer.resume=true"), expected)


@pytest.mark.gpu
def test_an_fp16_run_resumes_with_its_loss_scale_to_uninterrupted_results(tmp_path, monkeypatch):
    on_cuda = tuple(o for o in SHORT if not o.startswith("trainer.device="))
    fp16 = (*on_cuda, "trainer.device=cuda", "trainer.precision=fp16-mixed")
    expected = train_in_process(tmp_path / "whole", *fp16)
    signal_at_step(monkeypatch, signal.SIGTERM, at_step=4)
    with pytest.raises(Preempted):
        train_in_process(tmp_path / "resumed", *fp16)
    monkeypatch.undo()
    same_results(train_in_process(tmp_path / "resumed", *fp16, "trainer.resume=true"), expected)
    # The scale and its growth count went on from step 4: a fresh scaler would have counted 4 steps fewer.
    scalers = [read_checkpoint(tmp_path / run / "checkpoints" / "last.pt")["scaler"] for run in ("whole", "resumed")]
    assert scalers[0] == scalers[1]


def test_sigterm_to_the_real_cli_exits_143_with_one_line_and_resume_continues_that_step(tmp_path, uninterrupted):
    expected = uninterrupted(LONG)
    run_dir = tmp_path / "stopped"
    process = start_cli(*LONG, f"hydra.run.dir={run_dir}")
    log, deadline = run_dir / "run.log", time.monotonic() + 120
    # "epoch 0:" is the evaluation logged just before the first step, with the handlers in place.
    while process.poll() is None and time.monotonic() < deadline and "epoch 0:" not in _text(log):
        time.sleep(0.02)  # polling for the event (the log line), not a fixed wait
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert stderr.strip().splitlines()[-1].startswith("error: stopped by SIGTERM after step")
    assert "trainer.resume=true continues from it" in stderr and not (run_dir / "metrics.json").exists()
    state = read_checkpoint(run_dir / "checkpoints" / "last.pt")["state"]
    assert state["batch_in_epoch"] > 0  # mid-epoch, not the last epoch's end
    same_results(train_in_process(run_dir, *LONG, "trainer.resume=true"), expected)


def test_a_packed_sweep_stops_every_job_at_a_step_and_resumes(tmp_path, monkeypatch):
    sweep = (*SHORT, "hydra/launcher=packed", "hydra.launcher.jobs_per_device=2", "model.hidden_size=8,12")
    signal_at_step(monkeypatch, signal.SIGTERM, at_step=4)  # raised from a job thread
    with pytest.raises(Preempted):
        sweep_in_process(tmp_path, *sweep)
    jobs = sorted(path for path in tmp_path.iterdir() if path.is_dir())
    assert len(jobs) == 2 and not any((job / "metrics.json").exists() for job in jobs)
    assert all(read_checkpoint(job / "checkpoints" / "last.pt")["state"]["epoch"] < 2 for job in jobs)
    monkeypatch.undo()
    sweep_in_process(tmp_path, *sweep, "trainer.resume=true")
    assert [metrics_of(job)["epochs_completed"] for job in jobs] == [2, 2]


def _text(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def test_submitit_requeues_a_preempted_job_which_resumes_by_itself(tmp_path, uninterrupted):
    """submitit_local emulates Slurm's warning signal (USR2) and requeue; the job's lock names its process."""
    expected = uninterrupted(LONG)
    sweep_dir = tmp_path / "sweep"
    process = start_cli(
        "-m", *LONG, "trainer.resume=true", "hydra/launcher=submitit_local", f"hydra.sweep.dir={sweep_dir}"
    )
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline and not _training(sweep_dir):
        time.sleep(0.05)  # polling for the event (the log line), not a fixed wait
    job = _training(sweep_dir)
    assert job is not None, process.communicate()[1]
    os.kill(int((job / "run.lock").read_text().split()[1]), signal.SIGUSR2)  # the job's own process
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    log = (job / "run.log").read_text()
    assert "stopped by SIGUSR2 after step" in log and "resumed from" in log  # requeued, then resumed
    same_results(metrics_of(job), expected)


def _training(sweep_dir: Path) -> Path | None:
    """The job directory whose run has logged its first evaluation (its handlers are in place)."""
    for log in sweep_dir.glob("*/run.log"):
        if "epoch 0:" in _text(log):
            return log.parent
    return None


def test_variable_length_series_stop_mid_epoch_and_resume_to_the_same_results(tmp_path, monkeypatch):
    """Bucketed batches of padded series: a resumed epoch draws the same order and skips what it trained."""
    from test_array_files import write_npz

    path = write_npz(tmp_path / "my.npz")
    series = ("data=arrays", f"data.path={path}", "data.batch_size=8", "data.val_size=12", "model.dropout=0.2")
    overrides = (*series, "model.hidden_size=8", "trainer.epochs=2", "trainer.log_every_n_steps=2")
    overrides = (*overrides, "trainer.device=cpu", "model.num_layers=2")
    expected = train_in_process(tmp_path / "whole", *overrides)
    signal_at_step(monkeypatch, signal.SIGTERM, at_step=4)  # 6 batches an epoch: mid-epoch 1
    with pytest.raises(Preempted):
        train_in_process(tmp_path / "resumed", *overrides)
    assert read_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")["state"]["batch_in_epoch"] == 4
    monkeypatch.undo()
    same_results(train_in_process(tmp_path / "resumed", *overrides, "trainer.resume=true"), expected)


def test_a_stopped_packed_sweep_starts_no_further_job(tmp_path, monkeypatch):
    sweep = (*SHORT, "hydra/launcher=packed", "hydra.launcher.jobs_per_device=1", "model.hidden_size=8,12,16")
    signal_at_step(monkeypatch, signal.SIGTERM, at_step=4)  # in the first job; the other two wait their turn
    with pytest.raises(Preempted):
        sweep_in_process(tmp_path, *sweep)
    jobs = [path for path in tmp_path.iterdir() if path.is_dir()]
    assert [job.name.split("_")[0] for job in jobs] == ["0"]  # the queued jobs never started
    monkeypatch.undo()
    sweep_in_process(tmp_path, *sweep, "trainer.resume=true")
    assert sorted(metrics_of(job)["epochs_completed"] for job in tmp_path.iterdir() if job.is_dir()) == [2, 2, 2]


def test_a_fresh_start_in_a_used_directory_never_resumes_the_earlier_runs_files(tmp_path, monkeypatch):
    """Run A finishes in a directory; run B starts afresh there and is stopped before its first epoch
    ends, so previous.pt and metrics.json are still A's: resuming B continues B, not A."""
    other = (*SHORT, "optimizer.lr=0.01")
    train_in_process(tmp_path / "used", *SHORT)  # run A, finished
    expected = train_in_process(tmp_path / "whole", *other)
    signal_at_step(monkeypatch, signal.SIGTERM, at_step=2)
    with pytest.raises(Preempted):
        train_in_process(tmp_path / "used", *other)  # run B: trainer.resume=false
    state = read_checkpoint(tmp_path / "used" / "checkpoints" / "last.pt")["state"]
    assert state["step"] == 2 and state["epoch_seconds"] > 0  # the partial epoch's time is kept too
    monkeypatch.undo()
    same_results(train_in_process(tmp_path / "used", *other, "trainer.resume=true"), expected)


def test_a_packed_sweep_hands_the_signal_on_once(tmp_path, monkeypatch):
    """Under submitit the handler in place before ours requeues the job: two stopped jobs call it once."""
    calls = []
    before = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))
    try:
        sweep = (*SHORT, "hydra/launcher=packed", "hydra.launcher.jobs_per_device=2", "model.hidden_size=8,12")
        signal_at_step(monkeypatch, signal.SIGUSR2, at_step=4)
        with pytest.raises(Preempted) as stopped:
            sweep_in_process(tmp_path, *sweep)
    finally:
        signal.signal(signal.SIGUSR2, before)
    assert calls == [signal.SIGUSR2] and stopped.value.code == 128 + signal.SIGUSR2
