"""The protocol for small training sets: stratified folds of the training split, the refit on all of it, the
report over folds and seeds, and `tune` (a study on validation, then its pick over seeds on the test set)."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, compose_config, metrics_of, run_cli, train_in_process
from src.config.errors import ConfigError, one_line
from src.config.schema import validate
from src.data.series_assembly import holdout
from src.sweeps.report import over_seeds

IPD = ("data=uea", "data.name=ItalyPowerDemand", "trainer.device=cpu", "model.hidden_size=4")


def test_folds_partition_the_training_split_and_each_keeps_the_class_shares():
    labels = np.array(["a"] * 30 + ["b"] * 15 + ["c"] * 5)
    held = [holdout(labels, 0.2, "data.val_size", seed=3, fold=fold)[1] for fold in range(5)]
    assert sorted(torch.cat(held).tolist()) == list(range(50))  # every series validates exactly once
    for part in held:
        assert sorted(labels[part.numpy()].tolist()) == ["a"] * 6 + ["b"] * 3 + ["c"]
    kept, first = holdout(labels, 0.2, "data.val_size", seed=3)
    assert torch.equal(first, held[0]) and not set(kept.tolist()) & set(first.tolist())
    with pytest.raises(ConfigError) as raised:
        holdout(labels, 0.2, "data.val_size", seed=3, fold=5)
    assert one_line(raised.value) == "data.fold=5 is not allowed: expected 0 to 4: 5 validation parts of 10 series"


def test_a_refit_trains_on_the_whole_training_split_and_chooses_nothing(tmp_path):
    from src.training.building import build_data

    split = build_data(compose_config(*IPD), torch.device("cpu"))
    whole = build_data(compose_config(*IPD, "data.refit=true"), torch.device("cpu"))
    assert len(whole.val_y) == 0 and len(whole.train_y) == len(split.train_y) + len(split.val_y) == 67
    metrics = train_in_process(tmp_path, *IPD, "data.refit=true", "trainer.epochs=2", "trainer.test_every_epoch=false")
    assert metrics["status"] == "ok" and metrics["test_acc"] is not None
    assert metrics["val_acc"] is None and metrics["best_val_acc"] is None  # no validation: nothing was best
    assert (tmp_path / "checkpoints" / "last.pt").is_file() and not (tmp_path / "checkpoints" / "best.pt").exists()


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (("trainer.early_stopping_patience=3",), "trainer.early_stopping_patience=3 is not allowed: expected null"),
        (("scheduler=plateau",), "scheduler='plateau' is not allowed: expected a schedule that does not watch val/acc"),
        (("data.fold=-1", "data.refit=false"), "data.fold=-1 is not allowed: expected an integer >= 0"),
    ],
)
def test_what_needs_a_validation_part_is_refused_with_a_refit_in_one_line(overrides, line):
    with pytest.raises(ConfigError) as raised:
        validate(compose_config(*IPD, "data.refit=true", *overrides))
    assert one_line(raised.value).startswith(line)


def test_the_report_averages_folds_and_seeds_of_one_configuration():
    rows = [
        {"overrides": f"model=gru data.fold={fold} seed={seed}", "status": "ok", "val_acc": va, "test_acc": ta}
        for fold, seed, va, ta in ((0, 0, 0.5, 0.6), (1, 0, 0.7, 0.8), (0, 1, None, 0.7))
    ]
    (group,) = over_seeds(rows)
    assert group["overrides"] == "model=gru" and group["seeds"] == 3
    assert group["val_acc_mean"] == pytest.approx(0.6) and group["test_acc_mean"] == pytest.approx(0.7)


def test_tune_runs_the_study_then_its_pick_over_seeds_scoring_the_test_set_once_each(tmp_path, monkeypatch):
    """`hparams_search=series` end to end on a tiny problem, through the API (the CLI calls the same function).
    Each stage's `python -m src.run -m ...` runs as written, forked with the libraries imported (run_cli)
    instead of in a fresh interpreter: seconds of imports saved twice."""
    from types import SimpleNamespace

    import src.sweeps.tuning as tuning
    from src.api import tune

    def forked(command: list[str], cwd: Path, check: bool) -> subprocess.CompletedProcess:
        assert command[1:3] == ["-m", "src.run"] and cwd == ROOT
        return run_cli(*command[3:])

    monkeypatch.setattr(tuning, "subprocess", SimpleNamespace(run=forked))

    tiny = ("data.name=ItalyPowerDemand", "trainer.epochs=2", "trainer.device=cpu", "model.filters=[4,8,4]")
    study = ("hydra.sweeper.n_trials=2", "hydra.sweeper.pruner.min_resource=1", "model.hidden_size=4")
    report = tune(*tiny, *study, seeds=2, out=tmp_path)
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert report["study_trials"] == 2 and report["study_metric"] == "val_loss"  # the preset minimises
    assert report["seeds"] == 2 and report["test_acc_mean"] == pytest.approx(sum(report["test_acc"]) / 2)
    seeds = sorted((tmp_path / "final").glob("*_seed*"))
    assert [path.name for path in seeds] == ["0_seed0", "1_seed1"]
    for run in seeds:
        metrics = metrics_of(run)
        assert metrics["val_acc"] is None and metrics["test_acc"] in report["test_acc"]  # refit, scored once
        assert run.joinpath(".hydra", "overrides.yaml").read_text().lower().count("data.refit=true") == 1
        assert all(pick in run.joinpath(".hydra", "overrides.yaml").read_text() for pick in report["pick"])
    assert "test_acc" in (tmp_path / "report.md").read_text()
