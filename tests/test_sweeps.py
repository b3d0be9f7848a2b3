"""Multiruns: a real CLI sweep for each launcher that starts processes of its own (joblib, submitit); the basic
launcher, the Optuna sweeper, HPARAMS, the report and TensorBoard in-process."""

import csv
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from conftest import ROOT, TINY, run_cli, sweep_in_process, sweep_rows
from src import report
from src.runs import tags
from src.runs.hparams import DEFINING_KEYS, HPARAM_KEYS, METRIC_TAGS, hparam_values
from src.sweeps.report import over_seeds, seed_table
from src.training.devices import pick_device, threads_per_job


def sweep(tmp_path: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """The real CLI: `python -m src.run -m ...`."""
    result = run_cli("-m", *TINY, *overrides, f"hydra.sweep.dir={tmp_path}")
    summary = tmp_path / "summary.csv"
    rows = list(csv.DictReader(summary.open())) if summary.exists() else []
    return result, rows


def session_hparams(run_dir: Path) -> dict:
    """The hyperparameters a run declared to TensorBoard's HPARAMS plugin."""
    events = EventAccumulator(str(run_dir)).Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    return {  # named "NN key" (the rank orders TensorBoard's columns), shown as the key
        key.split(" ", 1)[1]: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
        for key, value in start.hparams.items()
    }


def test_basic_launcher_one_tensorboard_run_with_hparams_per_job(tmp_path):
    rows = sweep_rows(tmp_path, *TINY, "model.hidden_size=8,12", "optimizer.lr=1e-3,3e-3")
    jobs = sorted(path for path in tmp_path.iterdir() if path.is_dir())
    assert [job.name.split("_")[0] for job in jobs] == ["0", "1", "2", "3"]
    assert jobs[3].name.startswith("3_") and {"model.hidden_size=12", "optimizer.lr=0.003"} <= set(
        jobs[3].name[2:].split(",")
    )
    for job in jobs:
        assert len(list(job.glob("events.out.tfevents.*"))) == 1  # one run per job, no sub-runs
        declared = session_hparams(job)
        config = json.loads(json.dumps(hparam_values({"data": {}, "optimizer": {"_target_": "x.Adam"}})))
        assert set(declared) == set(config)  # the same keys in every job
        assert declared["model.hidden_size"] == (12 if "hidden_size=12" in job.name else 8)
        assert declared["model.bidirectional"] is False and declared["data.normalize"] is True  # booleans
    assert len(rows) == 4 and {row["status"] for row in rows} == {"ok"}
    assert rows[0]["best"] == "*" and float(rows[0]["val_acc"]) == max(float(row["val_acc"]) for row in rows)
    assert (tmp_path / "summary.md").read_text().count("| ok |") == 4 and (tmp_path / "summary.png").exists()


def test_joblib_launcher_runs_jobs_in_parallel_processes_with_shared_threads(tmp_path):
    result, rows = sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "model=rnn,gru,lstm")
    assert result.returncode == 0, result.stderr
    assert sorted(row["overrides"].split()[0] for row in rows) == ["data=synthetic"] * 3
    assert {row["status"] for row in rows} == {"ok"} and len(rows) == 3
    logs = [(job / "run.log").read_text() for job in tmp_path.glob("*_*") if job.is_dir()]
    expected = max(1, (os.cpu_count() or 1) // 2)  # the cores shared between 2 parallel jobs
    assert len(logs) == 3 and all(f"({expected} threads)" in log for log in logs)


def test_a_failing_job_does_not_stop_the_sweep_and_every_failure_is_reported(tmp_path):
    with pytest.raises(SystemExit) as stopped:
        sweep_in_process(tmp_path, *TINY, "model.hidden_size=0,8,-3")
    last = str(stopped.value.code)
    rows = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert last.startswith("error: 2 of 3 jobs failed")
    assert "model.hidden_size=0 is not allowed" in last and "model.hidden_size=-3 is not allowed" in last
    assert [row["status"] for row in rows] == ["ok", "failed", "failed"]
    assert rows[0]["best"] == "*" and "model.hidden_size=-3" in (tmp_path / "summary.md").read_text()


# The lstm_optuna preset's models (up to 3 layers of 256) on fewer examples than TINY's: trained in a blink.
FEW = ("data.num_train=128", "data.num_test=100")


def test_optuna_sweeper_three_seeded_trials(tmp_path):
    rows = sweep_rows(tmp_path, *TINY, *FEW, "hparams_search=lstm_optuna", "hydra.sweeper.n_trials=3")
    assert len(rows) == 3 and {row["status"] for row in rows} == {"ok"}
    assert all("model.cell=" in row["overrides"] and "optimizer.lr=" in row["overrides"] for row in rows)
    results = (tmp_path / "optimization_results.yaml").read_text()
    assert "best_params" in results and f"best_value: {max(float(row['val_acc']) for row in rows)}" in results
    # The sampler is seeded: the same study proposes the same trials again.
    rows_again = sweep_rows(tmp_path / "again", *TINY, *FEW, "hparams_search=lstm_optuna", "hydra.sweeper.n_trials=3")
    assert sorted(row["overrides"] for row in rows_again) == sorted(row["overrides"] for row in rows)


def test_optuna_study_in_sqlite_resumes_where_it_stopped(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first_rows = sweep_rows(
        tmp_path / "first",
        *TINY,
        *FEW,
        "hparams_search=lstm_optuna",
        "hydra.sweeper.n_trials=2",
        f"hydra.sweeper.storage={storage}",
    )
    # A new seed for the second run of the study: the same one would propose the first run's trials again.
    # The same study again (its storage and name), now up to 4 trials in all: 2 more.
    second_rows = sweep_rows(
        tmp_path / "second",
        *TINY,
        *FEW,
        "hparams_search=lstm_optuna",
        "hydra.sweeper.n_trials=4",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.sampler.seed=1",
    )
    study = optuna.load_study(study_name="lstm_optuna", storage=storage)
    assert [trial.number for trial in study.trials] == [0, 1, 2, 3]
    assert {row["overrides"] for row in first_rows}.isdisjoint(row["overrides"] for row in second_rows)
    best = max(float(row["val_acc"]) for row in first_rows + second_rows)
    assert f"best_value: {best}" in (tmp_path / "second" / "optimization_results.yaml").read_text()


def test_zero_joblib_workers_are_refused_in_one_line_before_any_job(tmp_path):
    with pytest.raises(SystemExit) as stopped:
        sweep_in_process(tmp_path / "sweep", *TINY, "hydra/launcher=joblib", "hydra.launcher.n_jobs=0")
    assert str(stopped.value.code).startswith("error: hydra.launcher.n_jobs=0 is not allowed: expected")
    assert not (tmp_path / "sweep").exists()


def test_submitit_local_launcher(tmp_path):
    result, rows = sweep(tmp_path, "hydra/launcher=submitit_local", "model.hidden_size=8,12")
    assert result.returncode == 0, result.stderr
    assert len(rows) == 2 and {row["status"] for row in rows} == {"ok"}


def test_report_command_regenerates_the_summary(tmp_path, monkeypatch, capsys):
    sweep_in_process(tmp_path, *TINY, "model.hidden_size=8,12")
    for name in ("summary.csv", "summary.md", "summary.png"):
        (tmp_path / name).unlink()
    monkeypatch.setattr(sys, "argv", ["src.report", str(tmp_path)])
    report.main()
    assert "| * |" in capsys.readouterr().out and (tmp_path / "summary.png").stat().st_size > 1000
    monkeypatch.setattr(sys, "argv", ["src.report", str(tmp_path / "0_nothing")])
    with pytest.raises(SystemExit) as stopped:
        report.main()
    assert str(stopped.value.code).startswith("error: ") and "holds no job directories" in str(stopped.value.code)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str, body: dict | None = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@contextmanager
def tensorboard_server(logdir: Path) -> Iterator[str]:
    """A real TensorBoard serving logdir; yields the base URL of its data API."""
    port = free_port()
    command = [str(Path(sys.executable).parent / "tensorboard"), "--logdir", str(logdir), "--host", "127.0.0.1"]
    command += ["--port", str(port), "--load_fast=false", "--reload_interval", "1"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        yield f"http://127.0.0.1:{port}/data"
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_for_runs(base: str, count: int) -> list:
    runs: list = []
    deadline = time.monotonic() + 60
    while len(runs) < count and time.monotonic() < deadline:
        try:
            runs = get_json(f"{base}/runs")
        except OSError:
            pass
        time.sleep(0.5)
    return runs


def test_tensorboard_server_shows_every_job_its_scalars_and_hparams_led_by_what_was_swept(tmp_path):
    # A boolean whose name sorts late, swept with a constant override beside it (data=synthetic etc. in TINY).
    sweep_in_process(tmp_path / "sweep", *TINY, "model.bidirectional=false,true")
    with tensorboard_server(tmp_path / "sweep") as base:
        runs = wait_for_runs(base, 2)
        assert sorted(run.split("_")[0] for run in runs) == ["0", "1"]
        scalar_tags = get_json(f"{base}/plugin/scalars/tags")
        assert all(tags.TEST_ACC in scalar_tags[run] for run in runs)
        experiment = get_json(f"{base}/plugin/hparams/experiment", {"experimentName": ""})
        groups = get_json(
            f"{base}/plugin/hparams/session_groups",
            {
                "experimentName": "",
                "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS"],
                "colParams": [],
                "startIndex": 0,
                "sliceSize": 100,
            },
        )["sessionGroups"]
    # The table's columns in TensorBoard's order, the first five ticked: what was swept, then what defines a run.
    columns = [info["displayName"] for info in experiment["hparamInfos"]]
    assert columns[:7] == ["model.bidirectional", *DEFINING_KEYS]
    assert set(columns) == {"data", "optimizer", *HPARAM_KEYS}
    assert [info.get("differs", False) for info in experiment["hparamInfos"]] == [True] + [False] * (len(columns) - 1)
    swept = experiment["hparamInfos"][0]
    assert swept["type"] == "DATA_TYPE_BOOL" and sorted(swept["domainDiscrete"]) == [False, True]
    assert [metric["name"]["tag"] for metric in experiment["metricInfos"]] == list(METRIC_TAGS)
    assert sorted(group["name"] for group in groups) == sorted(runs)  # exactly one row per job
    for group in groups:
        assert group["hparams"][swept["name"]] is ("bidirectional=true" in group["name"].lower())  # a boolean, not 0/1
        assert {metric["name"]["tag"] for metric in group["metricValues"]} >= {tags.VAL_ACC, tags.TEST_ACC}


def test_threads_per_job(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert threads_per_job(3, 4) == 3 and threads_per_job(None, None) is None
    assert threads_per_job(None, 4) == 4 and threads_per_job(None, 32) == 1 and threads_per_job(None, -1) == 1


def test_hparam_keys_are_the_same_whatever_the_config():
    sgd = hparam_values(
        {
            "data": {"dataset": "mnist"},
            "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1},
            "model": {"cell": "gru"},
        }
    )
    synthetic = {"_target_": "src.data.images.make_synthetic"}
    adam = hparam_values({"data": synthetic, "optimizer": {"_target_": "torch.optim.Adam", "betas": [0.9, 0.99]}})
    assert set(sgd) == set(adam) == {"data", "optimizer", *HPARAM_KEYS}
    assert (sgd["data"], sgd["optimizer"], sgd["model.cell"], adam["data"]) == ("mnist", "SGD", "gru", "synthetic")
    assert all(isinstance(value, (bool, int, float, str)) for value in adam.values())
    toy = hparam_values({"data": {"_target_": "toy_family.load_toy"}, "optimizer": {"_target_": "torch.optim.SGD"}})
    assert toy["data"] == "toy"  # a data set it does not know: its loader's name, never another set's


def test_sweep_jobs_spread_over_several_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert [str(pick_device("auto", job)) for job in range(6)] == [
        "cuda:0",
        "cuda:1",
        "cuda:2",
        "cuda:3",
        "cuda:0",
        "cuda:1",
    ]
    assert str(pick_device("cuda:2", 5)) == "cuda:2"  # an explicit device is kept
    assert str(pick_device("auto")) == "cuda"  # a single run: the current device


def test_report_gives_mean_and_spread_over_seeds_per_configuration():
    def row(overrides: str, val: float, test: float, status: str = "ok") -> dict:
        return {"overrides": overrides, "status": status, "val_acc": val, "test_acc": test}

    rows = [
        row("model=gru seed=0", 0.90, 0.89),
        row("model=gru seed=1", 0.92, 0.91),
        row("model=rnn seed=0", 0.80, 0.81),
        row("model=rnn seed=1", 0.84, 0.83),
        row("model=rnn seed=2", None, None, status="failed"),
    ]
    groups = over_seeds(rows)
    assert [g["overrides"] for g in groups] == ["model=gru", "model=rnn"] and [g["seeds"] for g in groups] == [2, 2]
    assert groups[0]["val_acc_mean"] == pytest.approx(0.91) and groups[0]["val_acc_std"] == pytest.approx(
        0.01414, abs=1e-5
    )
    assert (groups[1]["test_acc_min"], groups[1]["test_acc_max"]) == (0.81, 0.83)
    assert "| model=gru | 2 | 0.9100 ± 0.0141 (0.9000-0.9200) | 0.9000 ± 0.0141 (0.8900-0.9100) |" in seed_table(rows)
    assert over_seeds([row("model=gru seed=0", 0.9, 0.9), row("model=rnn seed=0", 0.8, 0.8)]) == []


def test_a_sweeps_launching_process_does_not_import_torch():
    # The launching process composes configs, starts jobs and writes the report; importing torch there
    # would add seconds to every sweep that joblib's workers, which import it themselves, cannot hide.
    code = (
        "import sys, src.run, src.report, src.sweeps.callbacks; "
        "print([m for m in ('torch', 'tensorboard', 'matplotlib') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_swept_keys_are_what_the_command_line_or_the_sweeper_varies(tmp_path):
    from omegaconf import DictConfig, OmegaConf

    from src.run import swept_keys

    def hydra_config(task: list[str], params: dict | None = None) -> DictConfig:
        return OmegaConf.create(
            {
                "overrides": {"task": task},
                "sweeper": {"params": params},
                "sweep": {"dir": str(tmp_path)},
                "job": {"config": {"override_dirname": {"exclude_keys": ["trainer.device"]}}},
            }
        )

    job = ["data=synthetic", "model=gru", "optimizer.lr=0.003", "trainer.device=cpu"]
    # Optuna's study names what it chooses; no multirun.yaml.
    assert swept_keys(hydra_config(job, {"optimizer.lr": "interval(1e-4, 1e-2)"})) == {"optimizer.lr": "0.003"}
    # Nothing recorded: every override that is part of what the job is.
    assert swept_keys(hydra_config(job)) == {"data": "synthetic", "model": "gru", "optimizer.lr": "0.003"}
    # The basic sweeper's record of the command line: the keys given several values.
    command_line = ["data=synthetic", "model=rnn,gru", "optimizer.lr=1e-3,3e-3", "trainer.device=cpu"]
    OmegaConf.save({"hydra": {"overrides": {"task": command_line}}}, tmp_path / "multirun.yaml")
    assert swept_keys(hydra_config(job)) == {"model": "gru", "optimizer.lr": "0.003"}
