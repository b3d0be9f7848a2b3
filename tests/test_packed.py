"""seqlab jobs under the packed launcher: the same results as the basic launcher, each job's own files and
log, failures alone, resume, and the Optuna sweeper (Hydra's own launcher suites: test_packed_launcher.py)."""

import csv
import json

import pytest

from conftest import TINY, metrics_of, run_cli, sweep_in_process, sweep_rows

PACKED = ("hydra/launcher=packed", "hydra.launcher.jobs_per_device=2")
# One thread per job for both launchers: CPU kernels give bit-identical results for the same thread count.
SAME = (*TINY, "trainer.num_threads=1", "model.dropout=0.0")


def job_dirs(sweep_dir) -> list:
    return sorted(
        (path for path in sweep_dir.iterdir() if path.is_dir()), key=lambda path: int(path.name.split("_")[0])
    )


def test_packed_jobs_give_the_basic_launchers_results(tmp_path):
    sweep = (*SAME, "model=rnn,gru,lstm", "seed=0,1")
    basic = sweep_rows(tmp_path / "basic", *sweep)
    packed = sweep_rows(tmp_path / "packed", *sweep, *PACKED)
    assert len(basic) == len(packed) == 6 and {row["status"] for row in packed} == {"ok"}
    for one, other in zip(job_dirs(tmp_path / "basic"), job_dirs(tmp_path / "packed"), strict=True):
        assert one.name == other.name
        expected, got = metrics_of(one), metrics_of(other)
        for key in ("test_acc", "test_loss", "val_acc", "train_loss", "best_val_acc", "num_params"):
            assert got[key] == expected[key], (one.name, key)


def test_each_packed_job_has_its_own_directory_log_and_tensorboard_run(tmp_path):
    sweep_in_process(tmp_path, *TINY, "model.hidden_size=8,12,16", *PACKED)
    jobs = job_dirs(tmp_path)
    assert len(jobs) == 3
    for job in jobs:
        hidden = int(job.name.split("model.hidden_size=")[1].split(",")[0])
        log = (job / "run.log").read_text()
        assert log.count("metrics: ") == 1 and log.count("ready to train") == 1  # its own lines only
        assert json.loads(log.split("metrics: ")[1].splitlines()[0])["num_params"] == metrics_of(job)["num_params"]
        assert (job / ".hydra" / "overrides.yaml").read_text().count(f"model.hidden_size={hidden}") == 1
        assert len(list(job.glob("events.out.tfevents.*"))) == 1 and (job / "checkpoints" / "last.pt").is_file()
        assert (job / "predictions.png").is_file()
    assert (tmp_path / "summary.md").read_text().count("| ok |") == 3


def test_a_failing_packed_job_fails_alone(tmp_path):
    with pytest.raises(SystemExit) as stopped:
        sweep_in_process(tmp_path, *TINY, "model.hidden_size=8,0,12", *PACKED)
    assert str(stopped.value.code).startswith("error: 1 of 3 jobs failed")
    rows = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert sorted(row["status"] for row in rows) == ["failed", "ok", "ok"]
    assert "model.hidden_size=0 is not allowed" in next(row["error"] for row in rows if row["status"] == "failed")


def test_a_packed_sweep_resumes(tmp_path):
    sweep = (*TINY, "model.hidden_size=8,12", *PACKED)
    sweep_in_process(tmp_path, *sweep)
    jobs = job_dirs(tmp_path)
    (jobs[1] / "metrics.json").unlink()  # killed after its checkpoint, before its metrics
    finished = (jobs[0] / "metrics.json").stat().st_mtime_ns
    sweep_in_process(tmp_path, *sweep, "trainer.resume=true")
    assert (jobs[0] / "metrics.json").stat().st_mtime_ns == finished
    assert "resumed from" in (jobs[1] / "run.log").read_text() and metrics_of(jobs[1])["status"] == "ok"


def test_optuna_batches_its_trials_into_packs(tmp_path):
    rows = sweep_rows(
        tmp_path, *TINY, "hparams_search=lstm_optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", *PACKED
    )
    assert len(rows) == 4 and {row["status"] for row in rows} == {"ok"}
    best = max(float(row["val_acc"]) for row in rows)
    assert f"best_value: {best}" in (tmp_path / "optimization_results.yaml").read_text()


def test_the_readme_sweep_through_the_real_cli(tmp_path):
    result = run_cli(
        "-m",
        *TINY,
        "hydra/launcher=packed",
        "model=rnn,gru,lstm",
        "optimizer.lr=1e-3,3e-3",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert len(rows) == 6 and {row["status"] for row in rows} == {"ok"}


def test_zero_jobs_per_device_is_refused_in_one_line_before_any_job(tmp_path):
    """In-process: the exit message is what the CLI prints (a real process: test_packed_launcher.py)."""
    with pytest.raises(SystemExit) as stopped:
        sweep_in_process(tmp_path / "bad", *TINY, "hydra/launcher=packed", "hydra.launcher.jobs_per_device=0")
    line = str(stopped.value.code)
    assert line.startswith("error: hydra.launcher.jobs_per_device=0 is not allowed") and "\n" not in line
    assert not (tmp_path / "bad").exists()
