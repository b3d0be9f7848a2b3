"""Sweeps on a real Slurm cluster through hydra/launcher=slurm: every job a Slurm job, a failing job alone,
Slurm's warning signal before the time limit with submitit's requeue and the resume, max_num_timeout,
preemption by the scheduler, and a study whose trials are Slurm jobs. `make slurm` starts the cluster (one
node on this machine), `make test-slurm` runs these; `make test` leaves them out. Without a cluster they
fail: they never skip."""

import csv
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState
from test_preemption import same_results
from test_study import ALWAYS_PRUNE, stored_trials

from conftest import ROOT, TINY, metrics_of, run_cli, train_in_process, unique_study_name

pytestmark = pytest.mark.slurm

# One core and a little memory a job, no GPU: the test cluster's node has two cores, so two jobs run at once.
# One thread in every process, so that the jobs and the runs trained here sum in the same order.
SLURM = (
    "hydra/launcher=slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.gpus_per_node=null",
    "trainer.num_threads=1",
)
# Slurm's warning signal, due 10 s before a 1-minute limit, comes 20 to 50 s after the job starts (slurmctld
# looks at time limits every 30 s and sends it up to 30 s early). An epoch of LONG takes 6 to 16 s on one core
# (8 s alone on a 2-core VM, more beside other jobs): ten epochs outlast the signal on a much faster machine,
# and a job that stops at every restart still ends within its max_num_timeout requeues (20 s of work each).
LONG = (
    "data=synthetic",
    "data.num_train=5600",
    "data.seq_len=100",
    "model.hidden_size=128",
    "model.dropout=0.2",
    "trainer.log_every_n_steps=20",
    "trainer.device=cpu",
)
LONG_EPOCHS = "trainer.epochs=10"
# A job that is never requeued only has to be running when the signal comes: it never gets to its last epoch.
ENDLESS_EPOCHS = "trainer.epochs=100"
REQUEUES = 20
# A few seconds of training: long enough to be stopped mid-epoch once it has begun.
MEDIUM = (
    "data=synthetic",
    "data.num_train=3200",
    "data.seq_len=100",
    "model.hidden_size=64",
    "model.dropout=0.2",
    "trainer.epochs=2",
    "trainer.log_every_n_steps=10",
    "trainer.device=cpu",
)
# The line src/run.py logs at the start of a job that Slurm runs (a sweep of one job is no array).
JOB_LINE = re.compile(r"slurm job (\d+) \(array task (none|\d+_\d+)\), restart (\d+)")


@pytest.fixture(scope="module", autouse=True)
def cluster() -> None:
    """The cluster `make slurm` starts: a node that takes jobs, and accounting that answers sacct."""
    try:
        node = subprocess.run(["sinfo", "-h", "-N", "-p", "debug", "-o", "%t"], capture_output=True, text=True)
        accounting = subprocess.run(["sacct", "-n", "-X"], capture_output=True, text=True)
    except FileNotFoundError:
        pytest.fail("no Slurm on this machine: run `make slurm` first")
    state = node.stdout.strip()
    assert state.startswith(("idle", "mix", "alloc")), (
        f"partition debug: {state or node.stderr.strip()}; run `make slurm`"
    )
    assert accounting.returncode == 0, f"sacct: {accounting.stderr.strip()}; run `make slurm`"


def jobs_of(sweep_dir: Path) -> list[Path]:
    return sorted((path for path in sweep_dir.iterdir() if path.is_dir() and path.name[0].isdigit()), key=job_number)


def job_number(job: Path) -> int:
    return int(job.name.split("_")[0])


def slurm_runs(job: Path) -> list[tuple[str, ...]]:
    """(job id, array task, restart) of each start of this job, from its run.log."""
    return JOB_LINE.findall(_text(job / "run.log"))


def _text(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def slurm_states(array_job: str) -> dict[str, str]:
    """sacct's state of each task of an array job (the allocations, not their steps)."""
    listing = subprocess.run(
        ["sacct", "-n", "-P", "-X", "-j", array_job, "-o", "JobID,State"], capture_output=True, text=True, check=True
    )
    return dict(line.split("|") for line in listing.stdout.split())


class Sweep:
    """`python -m src.run -m ...` started in the background, its console written to files beside its directory."""

    def __init__(self, sweep_dir: Path, *overrides: str) -> None:
        self.dir = sweep_dir
        self.stdout, self.stderr = sweep_dir.with_suffix(".out"), sweep_dir.with_suffix(".err")
        with self.stdout.open("w") as out, self.stderr.open("w") as err:
            command = [sys.executable, "-m", "src.run", "-m", *overrides, f"hydra.sweep.dir={sweep_dir}"]
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=err)

    def wait(self, timeout_s: float) -> int:
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            # Its Slurm jobs too (submitit's folders are named by job id), so that the next test finds a free node.
            subprocess.run(["scancel", *{path.name.split("_")[0] for path in (self.dir / ".submitit").iterdir()}])
            raise

    def console(self) -> str:
        return self.stdout.read_text() + self.stderr.read_text()

    def training(self, count: int, timeout_s: float = 180) -> list[Path]:
        """Wait until `count` jobs have logged their first evaluation (their stop handlers are in place)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.process.poll() is None:
            started = [log.parent for log in self.dir.glob("*/run.log") if "epoch 0:" in _text(log)]
            if len(started) == count:
                return sorted(started, key=job_number)
            time.sleep(0.1)  # polling for the event (the log line), not a fixed wait
        raise AssertionError(f"{count} jobs did not start training: {self.console()}")


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """Three tiny jobs as one Slurm job array; the third has a bad value."""
    sweep_dir = tmp_path_factory.mktemp("slurm") / "sweep"
    sizes = "model.hidden_size=8,12,0"
    result = run_cli(
        "-m", *TINY, *SLURM, "hydra.launcher.timeout_min=5", sizes, f"hydra.sweep.dir={sweep_dir}", fresh=True
    )
    return sweep_dir, result


def test_each_job_of_a_sweep_is_a_task_of_one_slurm_array_and_the_report_lists_them(sweep):
    sweep_dir, result = sweep
    jobs = jobs_of(sweep_dir)
    assert [job_number(job) for job in jobs] == [0, 1, 2], result.stderr
    runs = [slurm_runs(job) for job in jobs]
    assert all(len(starts) == 1 for starts in runs), runs  # one start each: no requeue
    ids, array_tasks, _ = zip(*(starts[0] for starts in runs), strict=True)
    array = array_tasks[0].split("_")[0]
    assert len(set(ids)) == 3 and array_tasks == (f"{array}_0", f"{array}_1", f"{array}_2")
    assert slurm_states(array) == dict.fromkeys(array_tasks, "COMPLETED")
    summary = (sweep_dir / "summary.md").read_text()
    assert all(f"| {size} | " in summary for size in ("model.hidden_size=8", "model.hidden_size=12"))
    # Accounting answers submitit's sacct polls: no warning on the console of a sweep that waits on Slurm.
    assert "sacct" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_a_failing_job_fails_alone_and_the_sweep_reports_it(sweep):
    sweep_dir, result = sweep
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 1 of 3 jobs failed: job 2 (") and "model.hidden_size=0 is not allowed" in last
    assert [metrics_of(job)["status"] for job in jobs_of(sweep_dir)] == ["ok", "ok", "failed"]
    (failed_row,) = [line for line in (sweep_dir / "summary.md").read_text().splitlines() if "| failed |" in line]
    assert "model.hidden_size=0" in failed_row and "expected an integer > 0" in failed_row


@pytest.fixture(scope="module")
def time_limited(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Sweep, Sweep]:
    """A long job twice under a 1-minute limit with the warning signal 10 s ahead, at once: once with requeues
    allowed (more than the training needs), once with none (and more epochs than it could ever reach); and the
    uninterrupted run of the first, here meanwhile."""
    root = tmp_path_factory.mktemp("time_limit")
    limit = (*LONG, *SLURM, "hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=10", "trainer.resume=true")
    requeued = Sweep(root / "requeued", *limit, LONG_EPOCHS, f"hydra.launcher.max_num_timeout={REQUEUES}")
    not_requeued = Sweep(root / "not_requeued", *limit, ENDLESS_EPOCHS, "hydra.launcher.max_num_timeout=0")
    expected = train_in_process(root / "whole", *LONG, LONG_EPOCHS, "trainer.num_threads=1")
    requeued.wait(timeout_s=600)
    not_requeued.wait(timeout_s=300)
    return expected, requeued, not_requeued


def test_a_job_at_its_time_limit_is_requeued_and_resumes_to_the_uninterrupted_runs_results(time_limited):
    expected, sweep, _ = time_limited
    assert sweep.process.returncode == 0, sweep.console()
    (job,) = jobs_of(sweep.dir)
    log = _text(job / "run.log")
    stops = re.findall(r"stopped by SIGUSR2 after step \d+ \(epoch \d+, batch (\d+) of", log)
    assert stops and all(int(batch) > 0 for batch in stops), log  # each a mid-epoch checkpoint
    assert log.count("resumed from") == len(stops)
    starts = slurm_runs(job)
    assert [int(restart) for *_, restart in starts] == list(range(len(stops) + 1))
    assert len({job_id for job_id, *_ in starts}) == 1  # each stop requeued the same Slurm job
    # submitit counted each stop as a time-out and requeued the job with one time-out fewer left.
    submitit_log = "".join(_text(path) for path in (sweep.dir / ".submitit").glob("*/*_log.out"))
    remaining = sorted(
        {int(left) for left in re.findall(r"Requeued job \S+ \((\d+) remaining timeouts\)", submitit_log)}
    )
    assert remaining == list(range(REQUEUES - len(stops), REQUEUES)), submitit_log
    same_results(metrics_of(job), expected)


def test_a_job_past_max_num_timeout_is_not_requeued_and_keeps_its_checkpoint(time_limited):
    _, _, sweep = time_limited
    assert sweep.process.returncode == 1, sweep.console()
    (job,) = jobs_of(sweep.dir)
    log = _text(job / "run.log")
    assert re.search(r"stopped by SIGUSR2 after step \d+ \(epoch \d+, batch [1-9]\d* of", log), log
    assert "resumed from" not in log and [restart for *_, restart in slurm_runs(job)] == ["0"]
    metrics = metrics_of(job)
    assert metrics["status"] == "failed" and "timed-out too many times" in metrics["error"]
    assert (job / "checkpoints" / "last.pt").is_file()  # trainer.resume=true continues from it
    assert "timed-out too many times" in sweep.stderr.read_text().strip().splitlines()[-1]


def test_jobs_preempted_by_the_scheduler_are_requeued_and_resume_to_uninterrupted_results(tmp_path):
    """USR2 sent through Slurm (submitit's requeue), and a requeue by Slurm itself (SIGTERM; Slurm requeues)."""
    sweep = Sweep(
        tmp_path / "sweep", *MEDIUM, *SLURM, "hydra.launcher.timeout_min=10", "trainer.resume=true", "seed=0,1"
    )
    first, second = sweep.training(count=2)
    # By array task: one task's SLURM_JOB_ID is the array's own id, which names every task of the array.
    (_, first_task, _), (_, second_task, _) = slurm_runs(first)[0], slurm_runs(second)[0]
    subprocess.run(["scancel", "--signal=USR2", first_task], check=True)
    subprocess.run(["scontrol", "requeue", second_task], check=True)
    expected = [
        train_in_process(tmp_path / f"whole{seed}", *MEDIUM, "trainer.num_threads=1", f"seed={seed}") for seed in (0, 1)
    ]
    assert sweep.wait(timeout_s=300) == 0, sweep.console()
    for job, signal_name in ((first, "SIGUSR2"), (second, "SIGTERM")):
        log = _text(job / "run.log")
        assert re.search(rf"stopped by {signal_name} after step \d+ \(epoch \d+, batch [1-9]\d* of", log), log
        assert "resumed from" in log and [restart for *_, restart in slurm_runs(job)] == ["0", "1"]
    for job, whole in zip((first, second), expected, strict=True):
        same_results(metrics_of(job), whole)


def test_a_job_slurm_ends_without_a_result_stops_the_sweep_with_one_line_naming_its_state(tmp_path):
    """submitit reads the state from sacct: without accounting it would wait for this job forever."""
    sweep = Sweep(tmp_path / "sweep", *MEDIUM, *SLURM, "hydra.launcher.timeout_min=10")
    (job,) = sweep.training(count=1)
    subprocess.run(["scancel", slurm_runs(job)[0][0]], check=True)
    assert sweep.wait(timeout_s=180) == 1, sweep.console()
    last = sweep.stderr.read_text().strip().splitlines()[-1]
    assert last.startswith("error: Job ") and "has not produced any output (state: CANCELLED" in last
    # The report of the sweep that did not end lists the cancelled job, unfinished.
    assert "(1 jobs; the sweep did not end)" in sweep.stdout.read_text()
    (row,) = csv.DictReader((sweep.dir / "summary.csv").read_text().splitlines())
    assert row["job"] == "0" and row["status"] == "unfinished"


@pytest.mark.parametrize("storage", ["journal", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_study_on_slurm_prunes_its_trials_inside_their_jobs(tmp_path, storage, request):
    """hydra/sweeper=study with Slurm jobs as trials: each job reopens the study from its storage (the journal
    in the sweep directory, or PostgreSQL), reports its epochs and is pruned there; the sweeper records what
    the jobs decided. Every trial is pruned, so no trial completed: the sweep says so and exits 1."""
    sweep_dir = tmp_path / "study"
    study = ("hparams_search=pruned", "trainer.epochs=3", "hydra.sweeper.n_trials=3", *ALWAYS_PRUNE)
    name, url = "pruned", None
    if storage == "postgresql":
        name, url = unique_study_name("slurm"), request.getfixturevalue("postgres_url")
        study += (f"hydra.sweeper.storage={url}", f"hydra.sweeper.study_name={name}")
    result = run_cli("-m", *TINY, *study, *SLURM, "hydra.launcher.timeout_min=5", f"hydra.sweep.dir={sweep_dir}")
    assert result.returncode == 1 and f"no trial of study {name} completed (3 pruned)" in result.stderr, result.stderr
    trials = stored_trials(sweep_dir, name, url)
    assert [trial.state for trial in trials] == [TrialState.PRUNED] * 3
    assert all(list(trial.intermediate_values) == [1] for trial in trials)  # reported by the job, epoch 1 of 3
    jobs = jobs_of(sweep_dir)
    assert len({slurm_runs(job)[0][0] for job in jobs}) == 3  # each trial its own Slurm job
    for trial, job in zip(trials, jobs, strict=True):
        assert f"trial {trial.number} pruned after epoch 1" in _text(job / "run.log")
        metrics = metrics_of(job)
        assert (metrics["status"], metrics["epochs_completed"]) == ("pruned", 1)
