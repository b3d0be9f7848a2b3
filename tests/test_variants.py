"""Views, heads, schedulers, early stopping, clipping, pictures, and the describe/evaluate commands."""

import csv
import json
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import run_cli
from src import tags
from src.checkpoints import TrainState
from src.data import make_synthetic
from src.models import RecurrentClassifier
from src.steps import make_step
from src.train import train_one_epoch

SMALL = ("data=synthetic", "data.num_train=400", "data.val_size=100", "data.seq_len=6", "data.input_size=5",
         "model.hidden_size=8", "trainer.epochs=1", "trainer.log_every_n_steps=2")


def sweep_rows(tmp_path: Path, *overrides: str) -> list[dict]:
    result = run_cli("-m", *SMALL, *overrides, f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    return list(csv.DictReader((tmp_path / "summary.csv").open()))


def job_metrics(tmp_path: Path) -> dict[str, dict]:
    return {job.name: json.loads((job / "metrics.json").read_text()) for job in tmp_path.glob("*_*") if job.is_dir()}


def test_every_view_trains_through_the_cli(tmp_path):
    rows = sweep_rows(tmp_path, "data.view=rows,columns,pixels,permuted", "data.permutation_seed=5")
    assert len(rows) == 4 and {row["status"] for row in rows} == {"ok"}
    for name, metrics in job_metrics(tmp_path).items():
        view = name.split("data.view=")[1].split(",")[0]
        assert metrics["view"] == view
        assert metrics["permutation_seed"] == (5 if view == "permuted" else None)
        shapes = (tmp_path / name / "run.log").read_text()
        expected = {"rows": "6 steps of 5", "columns": "5 steps of 6", "pixels": "30 steps of 1", "permuted": "30 steps of 1"}
        assert expected[view] + " features" in shapes


def test_every_head_with_and_without_bidirectional(tmp_path):
    rows = sweep_rows(tmp_path, "model.head=last,flatten,mean,max", "model.bidirectional=false,true",
                      "model.num_layers=2", "model.dropout=0.3")
    assert len(rows) == 8 and {row["status"] for row in rows} == {"ok"}


def test_every_scheduler_changes_the_learning_rate_as_documented(tmp_path):
    sweep_rows(tmp_path, "scheduler=none,cosine,step,plateau,onecycle", "trainer.epochs=3")
    rates = {}
    for job in tmp_path.glob("*_*"):
        events = EventAccumulator(str(job)).Reload()
        rates[job.name.split("scheduler=")[1].split(",")[0]] = [round(e.value, 8) for e in events.Scalars(tags.LR)]
    assert rates["none"] == [1e-3] * 3
    assert rates["cosine"] == [1e-3, 7.5e-4, 2.5e-4]  # T_max = trainer.epochs, stepped per epoch
    assert rates["step"] == [1e-3] * 3  # step_size 3: the first decay comes after epoch 3
    # Stepped per batch: warmed up from max_lr/25 and annealed below it again by the last step.
    assert rates["onecycle"][-1] < 1e-3 / 25 and rates["onecycle"][0] not in (1e-3, 1e-3 / 25)
    assert len(rates["plateau"]) == 3


def test_streaming_from_host_gives_the_same_run_as_holding_the_data(tmp_path):
    sweep_rows(tmp_path, "trainer.data_placement=device,host", "trainer.epochs=2")
    runs = job_metrics(tmp_path)
    assert len(runs) == 2 and len({(m["test_loss"], m["val_acc"]) for m in runs.values()}) == 1


def test_bf16_autocast_trains_a_gru_on_the_cpu(tmp_path):
    result = run_cli(*SMALL, "model=gru", "trainer.epochs=3", "optimizer.lr=0.01", "trainer.precision=bf16",
                     "trainer.device=cpu", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "ok" and metrics["test_acc"] > 0.5


def cpu_has_bf16_lstm() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.LSTM(5, 8, batch_first=True)(torch.zeros(1, 6, 5))
    except RuntimeError:
        return False
    return True


def test_bf16_lstm_on_the_cpu_trains_where_onednn_can_and_is_refused_in_one_line_where_not(tmp_path):
    # oneDNN has a bf16 LSTM only on CPUs with AVX-512 bf16; elsewhere the run must say so before training.
    result = run_cli(*SMALL, "trainer.epochs=3", "optimizer.lr=0.01", "trainer.precision=bf16", "trainer.device=cpu",
                     f"hydra.run.dir={tmp_path}")
    if cpu_has_bf16_lstm():
        assert result.returncode == 0, result.stderr
        assert json.loads((tmp_path / "metrics.json").read_text())["test_acc"] > 0.5
    else:
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "trainer.precision='bf16' is not allowed: expected fp32 on this CPU" in result.stderr
        assert not (tmp_path / "metrics.json").exists()


def test_early_stopping_stops_after_patience_epochs_without_improvement(tmp_path):
    result = run_cli(*SMALL, "trainer.epochs=6", "trainer.early_stopping_patience=1", "optimizer.lr=1e-9",
                     f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["stopped_early"] is True and metrics["epochs_completed"] == 2
    assert "early stop" in result.stdout


def test_gradient_clipping_bounds_the_update():
    data = make_synthetic(200, 20, 6, 5, 3, 0.2, 0, batch_size=200, eval_batch_size=50, val_size=20,
                          view="rows", permutation_seed=0, normalize=True)

    def update_size(clip: float | None) -> float:
        torch.manual_seed(0)
        model = RecurrentClassifier(5, 3, 6, hidden_size=8)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        step = make_step(model, optimizer, clip, "fp32", data.batch_size, cuda_graph=False)
        train_one_epoch(model, data, step, TrainState(), generator=torch.Generator().manual_seed(0),
                        log_every_n_steps=100, max_loss=None, writer=None, progress=False)  # one batch: one step
        return (torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm().item()

    assert update_size(1e-3) == pytest.approx(1e-3, rel=1e-3)  # SGD lr 1: the step is the clipped gradient
    assert update_size(None) > 1e-2


def test_run_draws_predictions_and_confusion_into_run_dir_and_tensorboard(tmp_path):
    result = run_cli(*SMALL, "trainer.epochs=2", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "predictions.png").stat().st_size > 5000 and (tmp_path / "confusion.png").stat().st_size > 3000
    events = EventAccumulator(str(tmp_path)).Reload()
    assert {tags.PREDICTIONS, tags.CONFUSION} <= set(events.Tags()["images"])
    assert len(events.Images(tags.PREDICTIONS)) == 2  # every epoch


def test_evaluate_a_checkpoint_without_training(tmp_path):
    run = tmp_path / "run"
    assert run_cli(*SMALL, "trainer.epochs=2", f"hydra.run.dir={run}").returncode == 0
    result = run_cli(f"ckpt={run / 'checkpoints' / 'last.pt'}", "device=cpu", f"hydra.run.dir={tmp_path / 'eval'}",
                     module="src.evaluate")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    trained = json.loads((run / "metrics.json").read_text())
    assert report["test_acc"] == trained["test_acc"] and report["epoch"] == 2
    assert report["test_loss"] == pytest.approx(trained["test_loss"], abs=1e-6)
    assert set(report["per_class_acc"]) == {"class 0", "class 1", "class 2", "class 3"}
    assert (tmp_path / "eval" / "predictions.png").exists() and (tmp_path / "eval" / "confusion.png").exists()
    synthetic_root = run_cli(f"ckpt={run / 'checkpoints' / 'last.pt'}", "data_root=/elsewhere",
                             f"hydra.run.dir={tmp_path / 'eval3'}", module="src.evaluate")
    assert synthetic_root.returncode != 0 and "error: data_root='/elsewhere'" in synthetic_root.stderr
    missing = run_cli(f"ckpt={tmp_path / 'nope.pt'}", f"hydra.run.dir={tmp_path / 'eval2'}", module="src.evaluate")
    assert missing.returncode != 0 and missing.stderr.strip().splitlines()[-1].startswith("error: ckpt=")


def test_evaluate_finds_moved_data_with_data_root(tmp_path, idx_root):
    run = tmp_path / "run"
    trained = run_cli("data=mnist", f"data.root={idx_root}", "data.download=false", "data.val_size=100",
                      "model.hidden_size=8", "trainer.epochs=1", f"hydra.run.dir={run}")
    assert trained.returncode == 0, trained.stderr
    moved = tmp_path / "moved"
    idx_root.rename(moved)
    result = run_cli(f"ckpt={run / 'checkpoints' / 'best.pt'}", f"data_root={moved}", f"hydra.run.dir={tmp_path / 'eval'}",
                     module="src.evaluate")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert report["test_acc"] == json.loads((run / "metrics.json").read_text())["test_acc"]


def test_describe_prints_parameters_and_shapes(tmp_path):
    result = run_cli(module="src.describe")
    assert result.returncode == 0, result.stderr
    assert "821,770" in result.stdout and "out:    (2, 28, 256)" in result.stdout
    assert "h_n:    (2, 2, 256)" in result.stdout and "c_n:    (2, 2, 256)" in result.stdout
    bidirectional = run_cli("model=gru", "model.bidirectional=true", "model.num_layers=3", "data.view=pixels",
                            module="src.describe")
    assert "out:    (2, 784, 512)" in bidirectional.stdout and "h_n:    (2, 6, 2, 256)" not in bidirectional.stdout
    assert "h_n:    (6, 2, 256)" in bidirectional.stdout and "c_n" not in bidirectional.stdout
    bad = run_cli("model.head=first", module="src.describe")
    assert bad.returncode != 0 and bad.stderr.startswith("error: model.head='first'")
