"""Nothing lost, nothing silent: resume after SIGKILL (the real CLI), resume further, divergence, resumed sweeps."""

import signal
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import metrics_of, run_cli, start_cli, sweep_in_process, train_in_process

# About 0.2 s an epoch on 2 cores: the kill, polled every 0.02 s, comes well before the last of 4 epochs.
LONG = (
    "data=synthetic",
    "data.num_train=4000",
    "model.hidden_size=16",
    "model.dropout=0.2",
    "trainer.epochs=4",
    "trainer.log_every_n_steps=10",
    "trainer.device=cpu",
)


def kill_after_first_checkpoint(run_dir: Path) -> None:
    """Start a real training and SIGKILL it as soon as its first epoch's checkpoint is in place."""
    process = start_cli(*LONG, f"hydra.run.dir={run_dir}")
    checkpoint = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)  # polling for the event (the file), not a fixed wait
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (run_dir / "metrics.json").exists()


def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path):
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    expected = train_in_process(whole, *LONG)
    kill_after_first_checkpoint(resumed)
    assert torch.load(resumed / "checkpoints" / "last.pt", weights_only=True)["state"]["epoch"] >= 1
    result = run_cli(*LONG, "trainer.resume=true", f"hydra.run.dir={resumed}")
    assert result.returncode == 0, result.stderr
    assert "resumed from" in result.stdout
    assert "took over" in result.stdout and "which ended without releasing it" in result.stdout  # the killed run's lock
    got = metrics_of(resumed)
    assert got["test_acc"] == expected["test_acc"] and got["epochs_completed"] == 4
    assert got["test_loss"] == pytest.approx(expected["test_loss"], abs=1e-6)
    assert got["best_val_acc"] == expected["best_val_acc"]

    events = EventAccumulator(str(resumed)).Reload()  # both processes' event files, purged
    for tag in events.Tags()["scalars"]:
        steps = [event.step for event in events.Scalars(tag)]
        assert steps == sorted(set(steps)), f"{tag} has duplicate or out-of-order steps"
    assert [event.value for event in events.Scalars("epoch")] == [0, 1, 2, 3, 4]

    # Resuming a finished run does nothing; resuming with another model shape is refused.
    assert train_in_process(resumed, *LONG, "trainer.resume=true") == got
    with pytest.raises(ValueError, match="model.hidden_size=16"):
        train_in_process(resumed, *LONG, "trainer.resume=true", "model.hidden_size=32")


def test_resume_with_more_epochs_trains_a_finished_run_further(tmp_path, caplog):
    short = ("data=synthetic", "data.num_train=400", "data.val_size=100", "model.hidden_size=8", "trainer.device=cpu")
    train_in_process(tmp_path, *short, "trainer.epochs=1")
    with caplog.at_level("INFO"):
        longer = train_in_process(tmp_path, *short, "trainer.epochs=2", "trainer.resume=true")
    assert "resumed from" in caplog.text and longer["epochs_completed"] == 2


def test_divergence_stops_the_run_and_keeps_the_metrics(tmp_path, caplog):
    with caplog.at_level("INFO"):
        metrics = train_in_process(
            tmp_path,
            "data=synthetic",
            "model.hidden_size=16",
            "optimizer=sgd",
            "optimizer.lr=1e6",
            "trainer.epochs=3",
            "trainer.log_every_n_steps=5",
            "trainer.device=cpu",
        )
    assert metrics["status"] == "diverged" and metrics["epochs_completed"] == 0
    assert metrics["diverged_at"] == {"epoch": 1, "step": 5} and metrics_of(tmp_path) == metrics
    assert "diverged: training loss" in caplog.text


def test_a_resumed_sweep_skips_finished_jobs_and_continues_the_others(tmp_path):
    sweep = (
        "data=synthetic",
        "data.num_train=400",
        "data.val_size=100",
        "model.hidden_size=8,16",
        "trainer.device=cpu",
        "trainer.epochs=1",
    )
    sweep_in_process(tmp_path, *sweep)
    jobs = sorted(path for path in tmp_path.iterdir() if path.is_dir())
    assert [job.name.split("_")[0] for job in jobs] == ["0", "1"]
    (jobs[1] / "metrics.json").unlink()  # job 1 "was killed" after its checkpoint, before its metrics
    finished = (jobs[0] / "metrics.json").stat().st_mtime_ns
    sweep_in_process(tmp_path, *sweep, "trainer.resume=true")
    logs = [(job / "run.log").read_text() for job in jobs]  # each job's log holds both launches' lines
    assert "already finished" in logs[0] and "resumed from" not in logs[0]
    assert "resumed from" in logs[1] and "already finished" not in logs[1]
    assert sorted(path for path in tmp_path.iterdir() if path.is_dir()) == jobs  # the same job directories
    assert (jobs[0] / "metrics.json").stat().st_mtime_ns == finished
    assert [metrics_of(job)["status"] for job in jobs] == ["ok", "ok"]
