"""Studies across machines on a real PostgreSQL (`make postgres`, then `make test-postgres`): trials in other
processes, two sweep processes feeding one study, a killed sweep resumed from the database, and a trial
whose process dies run again from its checkpoint (heartbeats on PostgreSQL; the sweeper's own watch on the
journal, where Optuna keeps no heartbeats)."""

import os
import signal
from pathlib import Path

import pytest
from optuna.trial import TrialState
from test_study import ALWAYS_PRUNE, LONG_TRIALS, NEVER_PRUNE, STUDY, job_dir, stored_trials, wait_for_checkpoints

from conftest import metrics_of, run_cli, start_cli, unique_study_name

pytestmark = pytest.mark.postgres


def on_postgres(url: str, name: str) -> tuple[str, ...]:
    return (f"hydra.sweeper.storage={url}", f"hydra.sweeper.study_name={name}")


def test_a_pruned_study_with_trials_in_other_processes_decides_pruning_in_postgresql(tmp_path, postgres_url):
    sweep, name = tmp_path / "study", unique_study_name("pruned")
    overrides = (*STUDY, *ALWAYS_PRUNE, "hydra.sweeper.n_trials=2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    result = run_cli("-m", *overrides, *on_postgres(postgres_url, name), f"hydra.sweep.dir={sweep}")
    assert result.returncode == 1 and f"no trial of study {name} completed (2 pruned)" in result.stderr
    trials = stored_trials(sweep, name, postgres_url)
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2 and not (sweep / "optuna.journal").exists()
    for trial in trials:  # each joblib worker reported its epoch to PostgreSQL and was pruned there
        assert list(trial.intermediate_values) == [1]
        assert f"trial {trial.number} pruned after epoch 1" in (job_dir(sweep, trial.number) / "run.log").read_text()
        assert metrics_of(job_dir(sweep, trial.number))["status"] == "pruned"


def test_two_sweep_processes_feed_one_study_and_run_exactly_n_trials_between_them(tmp_path, postgres_url):
    name = unique_study_name("shared")
    sweeps = [tmp_path / "a", tmp_path / "b"]
    study = (*STUDY, *NEVER_PRUNE, "hydra.sweeper.n_trials=6", "hydra/launcher=packed", "hydra.sweeper.n_jobs=1")
    processes = [start_cli("-m", *study, *on_postgres(postgres_url, name), f"hydra.sweep.dir={s}") for s in sweeps]
    for process in processes:
        process.communicate(timeout=300)
        assert process.returncode == 0
    trials = stored_trials(sweeps[0], name, postgres_url)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    ran = {sweep: {int(path.name.split("_")[0]) for path in sweep.glob("*_*") if path.is_dir()} for sweep in sweeps}
    assert ran[sweeps[0]] | ran[sweeps[1]] == set(range(6)) and not ran[sweeps[0]] & ran[sweeps[1]]
    assert ran[sweeps[0]] and ran[sweeps[1]]  # both processes took trials


def test_a_killed_sweep_resumes_from_the_database(tmp_path, postgres_url):
    sweep, name = tmp_path / "study", unique_study_name("killed")
    command = ["-m", *STUDY, *NEVER_PRUNE, *on_postgres(postgres_url, name), f"hydra.sweep.dir={sweep}"]
    command += ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"trainer.epochs={LONG_TRIALS}"]
    first = start_cli(*command, new_session=True)
    wait_for_checkpoints(sweep, 1)
    first.kill_group(signal.SIGKILL)  # the sweep and its workers, as a lost node would end them
    first.wait()
    running = [t.number for t in stored_trials(sweep, name, postgres_url) if t.state == TrialState.RUNNING]
    assert running
    done = run_cli(*command)
    assert done.returncode == 0, done.stderr[-2000:]
    trials = stored_trials(sweep, name, postgres_url)
    assert len(trials) == 4 and {t.state for t in trials} == {TrialState.COMPLETE}
    for number in running:
        assert f"taking up trial {number}" in done.stdout + done.stderr


def lock_holder(run_dir: Path) -> int | None:
    """The pid a job's run.lock names while it trains."""
    try:
        text = (run_dir / "run.lock").read_text()
    except FileNotFoundError:
        return None
    return int(text.split()[1]) if text.startswith("pid ") else None


@pytest.mark.parametrize("storage", ["postgresql", "journal"])
def test_a_trial_whose_process_is_killed_runs_again_from_its_checkpoint(tmp_path, postgres_url, storage):
    sweep, name = tmp_path / "study", unique_study_name("retried")
    where = on_postgres(postgres_url, name) if storage == "postgresql" else (f"hydra.sweeper.study_name={name}",)
    # Heartbeats where Optuna keeps them (RDB storages); on the journal the sweeper sees the process die.
    # The grace period outlasts a job's start-up in a fresh worker process (imports, data, model).
    beat = ("hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=20") if storage == "postgresql" else ()
    command = ["-m", *STUDY, *NEVER_PRUNE, *where, *beat, "hydra.sweeper.max_retries=1", f"hydra.sweep.dir={sweep}"]
    command += ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=1"]  # 2: a worker process
    command += ["hydra.sweeper.n_trials=2", "trainer.epochs=20", "data.num_train=1000"]
    process = start_cli(*command)
    wait_for_checkpoints(sweep, 1)
    (first,) = [path for path in sweep.glob("0_*")]
    pid = lock_holder(first)
    assert pid is not None and pid != process.pid  # the trial's own process, not the sweep's
    os.kill(pid, signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-2000:]
    trials = stored_trials(sweep, name, postgres_url if storage == "postgresql" else None)
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 2  # n_trials finished, the dead one's copy too
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.number for t in failed] == [0]
    (copy,) = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert copy.params == failed[0].params and copy.state == TrialState.COMPLETE
    log = (first / "run.log").read_text()  # the copy ran in the dead trial's directory, from its checkpoint
    assert "resumed from" in log and metrics_of(first)["epochs_completed"] == 20
    assert f"trial {copy.number} runs trial 0 again from its checkpoint" in stdout + stderr
