"""The study sweeper (hydra/sweeper=study): Hydra's Optuna config, asynchronous trials, pruning decided in
the trials' own processes, resumable studies, and what the report, HPARAMS and Optuna say of them."""

import csv
import json
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import TINY, metrics_of, run_cli, start_cli, sweep_in_process, train_in_process
from src.config.errors import ConfigError
from src.runs import tags
from src.sweeps.search_space import search_space
from src.sweeps.study import report_missed, study_settings
from src.sweeps.study_sweeper import NoTrialCompleted

STUDY = ("hparams_search=pruned", *TINY, "trainer.epochs=3", "hydra.sweeper.n_trials=4")
# Optuna's ThresholdPruner with a floor no accuracy reaches: every trial is pruned at its first report.
ALWAYS_PRUNE = (
    "hydra/sweeper/pruner=none",
    "hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner",
    "+hydra.sweeper.pruner.lower=1.5",
)
NEVER_PRUNE = ("hydra/sweeper/pruner=none",)


def stored_trials(sweep_dir: Path, name: str = "pruned", url: str | None = None) -> list[optuna.trial.FrozenTrial]:
    """The study's trials as its storage holds them: the sweep directory's journal, or the database at `url`."""
    storage = url or JournalStorage(JournalFileBackend(str(sweep_dir / "optuna.journal")))
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def job_dir(sweep_dir: Path, number: int) -> Path:
    (found,) = sweep_dir.glob(f"{number}_*")
    return found


def test_params_become_the_distributions_hydras_optuna_sweeper_gives():
    # The mapping of hydra_plugins/hydra_optuna_sweeper/_impl.py (create_optuna_distribution_from_override).
    space = search_space(
        {
            "model.cell": "choice(rnn, gru, lstm)",
            "model.num_layers": "range(1, 4)",
            "data.batch_size": "range(32, 256, 32)",
            "model.dropout": "interval(0.0, 0.5)",
            "model.hidden_size": "interval(16, 128)",
            "optimizer.lr": "tag(log, interval(1e-4, 1e-2))",
            "trainer.epochs": "tag(log, interval(2, 16))",
            "optimizer.weight_decay": "range(0.0, 0.1, 0.05)",
            "seed": "3",
        },
        ["model.head=mean", "~scheduler"],
    )
    assert space.distributions == {
        "model.cell": CategoricalDistribution(["rnn", "gru", "lstm"]),
        "model.num_layers": IntDistribution(1, 4, step=1),
        "data.batch_size": IntDistribution(32, 256, step=32),
        "model.dropout": FloatDistribution(0.0, 0.5),
        "model.hidden_size": FloatDistribution(16.0, 128.0),  # Hydra's grammar reads interval bounds as floats
        "optimizer.lr": FloatDistribution(1e-4, 1e-2, log=True),
        "trainer.epochs": FloatDistribution(2.0, 16.0, log=True),
        "optimizer.weight_decay": FloatDistribution(0.0, 0.1, step=0.05),
    }
    assert space.fixed == {"seed": "3", "model.head": "mean"} and space.deletions == ["~scheduler"]
    assert space.overrides({"model.cell": "gru", "model.dropout": 0.25}) == [
        "model.cell=gru",
        "model.dropout=0.25",
        "seed=3",
        "model.head=mean",
        "~scheduler",
    ]
    # The command line wins over hydra.sweeper.params for the same key, as in Hydra's sweepers.
    assert search_space({"seed": "choice(1, 2)"}, ["seed=5"]).fixed == {"seed": "5"}


def test_a_hyperband_study_under_packed_prunes_and_reports_every_state(tmp_path):
    sweep = tmp_path / "study"
    sweep_in_process(sweep, *STUDY, "hydra/launcher=packed", "hydra.sweeper.n_trials=6")
    trials = stored_trials(sweep)
    assert len(trials) == 6 and {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    for trial in trials:
        metrics = metrics_of(job_dir(sweep, trial.number))
        steps = sorted(trial.intermediate_values)
        assert steps == list(range(1, len(steps) + 1))  # one report per epoch trained
        assert trial.intermediate_values[steps[-1]] == pytest.approx(metrics["val_acc"])
        if trial.state == TrialState.COMPLETE:
            assert metrics["status"] == "ok" and trial.value == pytest.approx(metrics["val_acc"])
            assert metrics["epochs_completed"] == 3
        else:
            assert metrics["status"] == "pruned" and metrics["pruned_at"]["epoch"] == steps[-1] < 3
    results = (sweep / "optimization_results.yaml").read_text()
    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert f"best_trial: {best.number}" in results
    summary = (sweep / "summary.md").read_text()
    pruned = sum(t.state == TrialState.PRUNED for t in trials)
    assert f"{6 - pruned} ok, {pruned} pruned, 0 failed" in summary


def test_a_pruner_that_always_prunes_stops_every_trial_at_its_first_report_and_keeps_its_checkpoint(tmp_path):
    sweep = tmp_path / "study"
    with pytest.raises(NoTrialCompleted):  # every trial pruned: no best, said in one line
        sweep_in_process(sweep, *STUDY, *ALWAYS_PRUNE, "hydra/launcher=packed")
    trials = stored_trials(sweep)
    assert [t.state for t in trials] == [TrialState.PRUNED] * 4
    assert all(list(t.intermediate_values) == [1] for t in trials)
    for trial in trials:
        run = job_dir(sweep, trial.number)
        metrics = metrics_of(run)
        assert metrics["status"] == "pruned" and metrics["epochs_completed"] == 1
        assert metrics["pruned_at"] == {"epoch": 1, "value": pytest.approx(trial.intermediate_values[1])}
        assert (run / "checkpoints" / "last.pt").is_file() and not (run / "predictions.png").exists()
        events = EventAccumulator(str(run))
        events.Reload()  # HPARAMS's final/pruned column: 1 for a pruned trial
        assert [scalar.value for scalar in events.Scalars(tags.FINAL_PRUNED)] == [1.0]
        # The preset scores the test set only when a trial finishes: a pruned one never does.
        assert metrics["test_acc"] is None and tags.TEST_ACC not in events.Tags()["scalars"]
    assert "0 ok, 4 pruned, 0 failed" in (sweep / "summary.md").read_text()


def test_a_pruner_that_never_prunes_runs_every_trial_to_the_end(tmp_path):
    sweep = tmp_path / "study"
    sweep_in_process(sweep, *STUDY, *NEVER_PRUNE, "hydra.sweeper.n_trials=3")
    trials = stored_trials(sweep)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert all(sorted(t.intermediate_values) == [1, 2, 3] for t in trials)
    for trial in trials:  # the test set scored once, after the last epoch
        events = EventAccumulator(str(job_dir(sweep, trial.number))).Reload()
        val_steps = [scalar.step for scalar in events.Scalars(tags.VAL_ACC)]
        (test,) = events.Scalars(tags.TEST_ACC)
        assert len(val_steps) == 4 and test.step == val_steps[-1]
        assert metrics_of(job_dir(sweep, trial.number))["test_acc"] == pytest.approx(test.value)


def test_a_failed_trial_is_told_as_failed_and_the_study_goes_on(tmp_path):
    sweep = tmp_path / "study"
    # hidden_size 0 is refused when the model is built: the trials that draw it fail, the others finish.
    with pytest.raises(SystemExit, match="jobs failed"):
        sweep_in_process(sweep, *STUDY, *NEVER_PRUNE, "model.hidden_size=choice(0, 8)")
    trials = stored_trials(sweep)
    assert len(trials) == 4 and TrialState.RUNNING not in {t.state for t in trials}
    # The same study tolerating failures up to half of its trials ends well (its report still lists them).
    failures = sum(t.params["model.hidden_size"] == 0 for t in trials)
    assert 0 < failures <= 2
    sweep_in_process(
        tmp_path / "tolerant",
        *STUDY,
        *NEVER_PRUNE,
        "model.hidden_size=choice(0, 8)",
        "hydra.sweeper.max_failure_rate=0.5",
    )
    assert f"{failures} failed" in (tmp_path / "tolerant" / "summary.md").read_text()
    for trial in trials:
        failed = trial.params["model.hidden_size"] == 0
        assert trial.state == (TrialState.FAIL if failed else TrialState.COMPLETE)
        assert metrics_of(job_dir(sweep, trial.number))["status"] == ("failed" if failed else "ok")


def test_a_slow_trial_does_not_hold_back_new_ones(tmp_path):
    sweep = tmp_path / "study"
    sweep_in_process(
        sweep,
        *STUDY,
        *NEVER_PRUNE,
        "hydra/launcher=packed",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.sampler.seed=3",
        "hydra.sweeper.n_trials=5",
        "trainer.epochs=choice(1, 40)",
    )
    trials = sorted(stored_trials(sweep), key=lambda t: t.datetime_start)
    slow = max(trials, key=lambda t: t.params["trainer.epochs"])
    assert slow.params["trainer.epochs"] == 40 and slow.number == 0  # the premise: the first trial is the slow one
    quick = [t for t in trials if t.params["trainer.epochs"] == 1 and t.datetime_start > slow.datetime_start]
    # Started after the slow one and ended before it: the other slot kept going.
    inside = [t for t in quick if t.datetime_complete < slow.datetime_complete]
    assert len(inside) >= 2


def test_a_packed_studys_trials_with_dropout_match_the_same_runs_alone(tmp_path):
    sweep = tmp_path / "study"
    overrides = (
        "model.cell=lstm",
        "model.num_layers=2",
        "model.hidden_size=16",
        "data.batch_size=32",
        "trainer.epochs=2",
    )
    sweep_in_process(
        sweep,
        *STUDY,
        *NEVER_PRUNE,
        *overrides,
        "hydra/launcher=packed",
        "hydra.sweeper.n_trials=3",  # the third starts while another trains: seeding meets a step
        "model.dropout=choice(0.3, 0.5)",
    )
    for trial in stored_trials(sweep):
        packed = metrics_of(job_dir(sweep, trial.number))
        alone = train_in_process(
            tmp_path / f"alone{trial.number}",
            *TINY,
            *overrides,
            *(f"{key}={value}" for key, value in trial.params.items()),
        )
        keys = ("train_loss", "val_acc", "val_loss", "test_acc", "test_loss")
        assert {k: packed[k] for k in keys} == {k: alone[k] for k in keys}


@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_pruning_is_decided_inside_trials_in_other_processes(tmp_path, launcher):
    sweep = tmp_path / "study"
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else ["hydra.launcher.timeout_min=5"]
    # Two trials, both in flight: each one a process of its own under submitit.
    overrides = (*STUDY, *ALWAYS_PRUNE, "hydra.sweeper.n_trials=2", f"hydra/launcher={launcher}", *extra)
    result = run_cli("-m", *overrides, f"hydra.sweep.dir={sweep}")
    # Every trial pruned: no trial completed, which the study says in one line and a non-zero exit.
    assert result.returncode == 1 and "error: no trial of study pruned completed (2 pruned)" in result.stderr
    trials = stored_trials(sweep)
    assert [t.state for t in trials] == [TrialState.PRUNED] * 2
    statuses = {metrics_of(job_dir(sweep, t.number))["status"] for t in trials}
    assert statuses == {"pruned"}
    logs = [(job_dir(sweep, t.number) / "run.log").read_text() for t in trials]
    assert all(f"trial {t.number} pruned after epoch 1" in log for t, log in zip(trials, logs, strict=True))


def study_command(sweep: Path, *overrides: str) -> list[str]:
    return ["-m", *STUDY, *NEVER_PRUNE, *overrides, f"hydra.sweep.dir={sweep}"]


# The killed study's trials: long enough that the trial seen with the first checkpoint is still running
# when the kill comes, 50 ms later at most (an epoch of TINY takes about 0.1 s).
LONG_TRIALS = 10


def wait_for_checkpoints(sweep: Path, count: int) -> None:
    deadline = time.monotonic() + 120
    while len(list(sweep.glob("*/checkpoints/last.pt"))) < count and time.monotonic() < deadline:
        time.sleep(0.05)  # polling for the event (the files), not a fixed wait


def test_a_killed_study_resumes_its_running_trials_and_reaches_n_trials(tmp_path):
    sweep = tmp_path / "study"
    command = study_command(sweep, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"trainer.epochs={LONG_TRIALS}")
    first = start_cli(*command, new_session=True)
    wait_for_checkpoints(sweep, 1)
    first.kill_group(signal.SIGKILL)  # the sweep and its workers, as a lost node would end them
    first.wait()
    running = [t.number for t in stored_trials(sweep) if t.state == TrialState.RUNNING]
    checkpointed = [n for n in running if list(sweep.glob(f"{n}_*/checkpoints/last.pt"))]
    assert checkpointed, "the kill came before any running trial had a checkpoint"
    done = run_cli(*command)
    assert done.returncode == 0, done.stderr[-2000:]
    trials = stored_trials(sweep)
    assert len(trials) == 4 and {t.state for t in trials} == {TrialState.COMPLETE}
    for number in running:  # taken up under its own number: from its checkpoint, where it had one
        assert f"taking up trial {number}" in done.stdout + done.stderr
        assert sorted(stored_trials(sweep)[number].intermediate_values) == list(range(1, LONG_TRIALS + 1))
        resumed = "resumed from" in (job_dir(sweep, number) / "run.log").read_text()
        assert resumed == (number in checkpointed)


def test_a_resumed_trial_reports_the_epochs_its_checkpoint_holds_that_the_trial_never_got():
    """Killed between epoch 3's checkpoint and its report: the resumed run tells epoch 3, and only it."""
    trial = optuna.create_study(direction="maximize").ask()
    trial.report(0.5, 1)
    trial.report(0.6, 2)
    history = [{"epoch": 0, "val/acc": 0.1}, *({"epoch": e, "val/acc": 0.4 + e / 10} for e in (1, 2, 3))]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna warns about a step reported twice: none is
        report_missed(trial, "val/acc", history)
    told = trial.study.trials[0].intermediate_values
    assert told == {1: 0.5, 2: 0.6, 3: pytest.approx(0.7)}


def test_a_stop_signal_checkpoints_the_running_trials_and_the_rerun_continues(tmp_path):
    sweep = tmp_path / "study"
    # 25 epochs: the two trials differ in size, and both must still be running once both have a checkpoint.
    command = study_command(sweep, "hydra/launcher=packed", "hydra.sweeper.n_trials=2", "trainer.epochs=25")
    process = start_cli(*command)
    wait_for_checkpoints(sweep, 2)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM
    error_lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "the same command continues the study" in error_lines[0], stderr[-2000:]
    assert {t.state for t in stored_trials(sweep)} == {TrialState.RUNNING}
    # The report of a study that did not end: both trials unfinished, each with its checkpoint kept.
    assert f"sweep report: {sweep / 'summary.md'} (2 jobs; the sweep did not end)" in stdout
    rows = list(csv.DictReader((sweep / "summary.csv").read_text().splitlines()))
    assert sorted(row["job"] for row in rows) == ["0", "1"] and {row["status"] for row in rows} == {"unfinished"}
    rerun = run_cli(*command)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert {t.state for t in stored_trials(sweep)} == {TrialState.COMPLETE}
    for number in (0, 1):
        assert "resumed from" in (job_dir(sweep, number) / "run.log").read_text()


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("hydra.sweeper.direction=sideways", "hydra.sweeper.direction"),
        ("hydra.sweeper.storage=redis://localhost/0", "hydra.sweeper.storage"),
        ("hydra.sweeper.n_jobs=0", "hydra.sweeper.n_jobs"),
        ("hydra.sweeper.pruner.reduction_factor=1", "hydra.sweeper.pruner.reduction_factor"),
        ("hydra.sweeper.pruner.min_resource=0", "hydra.sweeper.pruner.min_resource"),
        ("+hydra.sweeper.sampler.no_such_argument=1", "hydra.sweeper.sampler"),
        ("hydra.sweeper.max_failure_rate=2", "hydra.sweeper.max_failure_rate"),
    ],
)
def test_a_bad_study_setting_is_one_line_naming_its_key(tmp_path, override, key):
    """In this process: each is refused before any trial runs (the command line's path: the test below)."""
    from hydra.errors import HydraException

    from src.config.errors import one_line

    with pytest.raises((ConfigError, HydraException)) as raised:
        sweep_in_process(tmp_path, *STUDY, override)
    assert one_line(raised.value).startswith(key) and not list(tmp_path.glob("*_*"))


def test_a_bad_study_setting_on_the_command_line_is_one_line_and_exit_1(tmp_path):
    result = run_cli("-m", *STUDY, "hydra.sweeper.direction=sideways", f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: hydra.sweeper.direction"), result.stderr[-2000:]


def test_the_dashboard_serves_the_study_from_its_journal(tmp_path):
    sweep = tmp_path / "study"
    with pytest.raises(NoTrialCompleted):
        sweep_in_process(sweep, *STUDY, *ALWAYS_PRUNE, "hydra.sweeper.n_trials=2")
    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "optuna-dashboard"),
            str(sweep / "optuna.journal"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        studies = wait_for_json(f"http://127.0.0.1:{port}/api/studies")["study_summaries"]
        assert [s["study_name"] for s in studies] == ["pruned"]
        detail = wait_for_json(f"http://127.0.0.1:{port}/api/studies/{studies[0]['study_id']}")
        assert [t["state"] for t in detail["trials"]] == ["Pruned", "Pruned"]
        assert all([v["step"] for v in t["intermediate_values"]] == [1] for t in detail["trials"])
    finally:
        server.terminate()
        server.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_json(url: str, seconds: float = 30) -> dict:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_storage_null_is_the_sweep_directorys_journal_and_a_shared_database_needs_a_study_name(tmp_path):
    node = OmegaConf.create(
        {
            "direction": "maximize",
            "storage": None,
            "study_name": None,
            "pruner": {"_target_": "optuna.pruners.NopPruner"},
        }
    )
    # A job resolves the sweep's relative paths from the launching directory, whatever its own cwd.
    settings = study_settings(node, "outputs/sweep", tmp_path)
    assert settings.storage == str(tmp_path / "outputs/sweep/optuna.journal") and settings.name == "seqlab"
    named = study_settings(OmegaConf.merge(node, {"storage": "studies/a.journal"}), "outputs/sweep", tmp_path)
    assert named.storage == str(tmp_path / "studies/a.journal")
    assert study_settings(OmegaConf.merge(node, {"storage": "memory"}), "s", tmp_path).storage == "memory"
    with pytest.raises(ConfigError, match="hydra.sweeper.study_name"):
        study_settings(OmegaConf.merge(node, {"storage": "postgresql://db/studies"}), "s", tmp_path)


@pytest.mark.parametrize(
    ("launcher", "chdir", "expected"),
    [
        ("hydra._internal.core_plugins.basic_launcher.BasicLauncher", False, 1),  # runs jobs in this process
        ("hydra_plugins.seqlab_packed_launcher.packed_launcher.PackedLauncher", False, 3),
        ("hydra_plugins.seqlab_packed_launcher.packed_launcher.PackedLauncher", True, 1),  # os.chdir is process-wide
        ("hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher", True, 3),  # its own processes
    ],
)
def test_trials_at_once_is_n_jobs_where_trials_can_run_side_by_side(launcher, chdir, expected):
    from src.sweeps.trial_report import trials_at_once

    hydra = OmegaConf.create(
        {"launcher": {"_target_": launcher}, "sweeper": {"n_jobs": 3}, "job": {"chdir": chdir, "env_set": {}}}
    )
    assert trials_at_once(hydra) == expected
