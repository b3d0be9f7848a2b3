"""Faults a long study would hit, each fixed: a refused launch touches nothing, one trial's bad ending fails
that trial only, a study with no finished trial says so, a damaged journal is named, a bad search space
names its key, a checkpoint at odds with its config is one line, and a minimising study ranks by its loss."""

import csv
import json

import pytest
import torch
from omegaconf import OmegaConf
from optuna.trial import TrialState
from test_study import ALWAYS_PRUNE, NEVER_PRUNE, STUDY, job_dir, stored_trials

from conftest import TINY, metrics_of, sweep_in_process, train_in_process
from src.config.errors import ConfigError, one_line
from src.runs.runlock import RunDirBusy, hold_run_dir
from src.sweeps.search_space import search_space
from src.sweeps.study import JournalDamaged, study_settings
from src.sweeps.study_sweeper import NoTrialCompleted
from src.training.checkpoint_reader import CheckpointError


def test_a_refused_second_launch_leaves_the_running_sweeps_record_untouched(tmp_path):
    sweep = tmp_path / "study"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("the running sweep's record\n")
    with hold_run_dir(sweep), pytest.raises(RunDirBusy):  # this test process is the running sweep
        sweep_in_process(sweep, *STUDY, *NEVER_PRUNE)
    assert (sweep / "multirun.yaml").read_text() == "the running sweep's record\n"
    assert sorted(path.name for path in sweep.iterdir()) == ["multirun.yaml"]


def test_a_trial_whose_outcome_cannot_be_read_fails_alone_and_the_study_goes_on(tmp_path, monkeypatch, capfd):
    import src.sweeps.study_sweeper as sweeper

    def read_damaged(run_dir):
        if run_dir.name.startswith("1_"):  # trial 1's metrics.json, as a crash mid-write would leave it
            return json.loads('{"status": "ok", "val_')
        return metrics_of(run_dir)

    monkeypatch.setattr(sweeper, "read_metrics", read_damaged)
    sweep = tmp_path / "study"
    sweep_in_process(sweep, *STUDY, *NEVER_PRUNE, "hydra/launcher=packed")
    trials = stored_trials(sweep)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert "trial 1 fail: its outcome could not be read: Unterminated string" in "".join(capfd.readouterr())


def test_a_study_in_which_no_trial_completed_ends_with_one_line_saying_so(tmp_path):
    sweep = tmp_path / "study"
    with pytest.raises(NoTrialCompleted) as raised:
        sweep_in_process(sweep, *STUDY, *ALWAYS_PRUNE, "hydra.sweeper.n_trials=2")
    line = one_line(raised.value)
    where = f"see {sweep / 'summary.md'} for each trial's reason"
    assert line == f"no trial of study pruned completed (2 pruned): no best parameters; {where}"
    assert not (sweep / "optimization_results.yaml").exists() and "0 ok, 2 pruned" in (sweep / "summary.md").read_text()


def test_a_torn_last_journal_line_is_cut_and_said_and_damage_before_the_end_is_named(tmp_path, capfd):
    sweep = tmp_path / "study"
    sweep_in_process(sweep, *STUDY, *NEVER_PRUNE, "hydra.sweeper.n_trials=1")
    journal = sweep / "optuna.journal"
    whole = journal.read_bytes()
    journal.write_bytes(whole + b'{"op_code": 5, "worker_id": "a-dead-proc')  # a crash mid-write
    capfd.readouterr()
    sweep_in_process(sweep, *STUDY, *NEVER_PRUNE, "hydra.sweeper.n_trials=2")
    records = len(whole.splitlines())
    assert f"{journal}: cut its torn last line (line {records + 1}" in "".join(capfd.readouterr())
    assert [t.state for t in stored_trials(sweep)] == [TrialState.COMPLETE] * 2
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join([*lines[:3], b"{not json\n", *lines[3:]]))
    with pytest.raises(JournalDamaged) as raised:
        sweep_in_process(sweep, *STUDY, *NEVER_PRUNE, "hydra.sweeper.n_trials=3")
    assert one_line(raised.value).startswith(f"{journal}: line 4 of {len(lines) + 1} is not a journal record")


@pytest.mark.parametrize(
    ("space", "line"),
    [
        ("tag(log, interval(0, 0.1))", "optimizer.lr='tag(log, interval(0, 0.1))' is not allowed: expected a range"),
        ("interval(0.1, 0.01)", "optimizer.lr='interval(0.1, 0.01)' is not allowed: expected a range Optuna accepts"),
    ],
)
def test_a_search_space_optuna_refuses_names_its_swept_key(space, line):
    with pytest.raises(ConfigError) as raised:
        search_space({"optimizer.lr": space}, [])
    assert one_line(raised.value).startswith(line)


def test_a_checkpoint_whose_weights_do_not_fit_its_config_is_one_line_naming_it(tmp_path):
    from src.api import load_run
    from src.evaluate import evaluate_checkpoint

    run = tmp_path / "run"
    train_in_process(run, *TINY)
    path = run / "checkpoints" / "last.pt"
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["model"]["fc.weight"] = torch.zeros(3, 5)  # not the (classes, hidden) its config builds
    torch.save(checkpoint, path)
    (run / "checkpoints" / "previous.pt").unlink(missing_ok=True)
    reason = f"{path}: its weights do not fit the model its config describes (size mismatch for fc.weight"
    for attempt in (
        lambda: evaluate_checkpoint(path, "cpu", None, tmp_path / "evaluated"),
        lambda: load_run(run),
        lambda: train_in_process(run, *TINY, "trainer.epochs=2", "trainer.resume=true"),
    ):
        with pytest.raises(CheckpointError) as raised:
            attempt()
        assert one_line(raised.value).startswith(reason), one_line(raised.value)


def test_a_minimising_study_optimises_and_ranks_by_the_validation_loss(tmp_path):
    sweep = tmp_path / "study"
    sweep_in_process(sweep, *STUDY, *NEVER_PRUNE, "hydra.sweeper.direction=minimize", "hydra.sweeper.n_trials=3")
    trials = stored_trials(sweep)
    for trial in trials:
        assert trial.value == pytest.approx(metrics_of(job_dir(sweep, trial.number))["val_loss"])
    best = min(trials, key=lambda t: t.value)
    assert f"best_trial: {best.number}" in (sweep / "optimization_results.yaml").read_text()
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    losses = [float(row["val_loss"]) for row in rows]
    assert losses == sorted(losses) and rows[0]["best"] == "*" and rows[0]["job"] == str(best.number)
    assert "sorted by val_loss" in (sweep / "summary.md").read_text()


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        ({"heartbeat_interval": 5}, "hydra.sweeper.heartbeat_interval=5 is not allowed: expected null, or whole"),
        ({"storage": "URL", "heartbeat_interval": 0}, "hydra.sweeper.heartbeat_interval=0 is not allowed"),
        ({"storage": "URL", "heartbeat_interval": 5, "grace_period": 5}, "hydra.sweeper.grace_period=5 is not"),
        ({"max_retries": -1}, "hydra.sweeper.max_retries=-1 is not allowed: expected an integer >= 0"),
    ],
)
def test_heartbeat_and_retry_settings_are_one_line_naming_their_key(tmp_path, overrides, line):
    sweeper = {"direction": "maximize", "storage": None, "study_name": "s", "pruner": {}} | overrides
    if sweeper["storage"] == "URL":
        sweeper["storage"] = "postgresql://seqlab@127.0.0.1:5433/optuna"  # not reached: the check comes first
    with pytest.raises(ConfigError) as raised:
        study_settings(OmegaConf.create(sweeper), tmp_path, tmp_path)
    assert one_line(raised.value).startswith(line)
