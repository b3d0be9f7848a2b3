"""The real CLI in a subprocess: what it writes (bad input: test_resilience.py)."""

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import run_cli
from src import tags

SMALL = ("data=synthetic", "model.hidden_size=16", "trainer.log_every_n_steps=5")


def test_run_writes_tensorboard_metrics_and_checkpoint(tmp_path):
    result = run_cli(*SMALL, "trainer.epochs=2", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert tuple(metrics) == tags.METRIC_KEYS
    assert metrics["status"] == "ok" and metrics["epochs_completed"] == 2 and metrics["device"] == "cpu"
    assert metrics["test_acc"] > 0.5 and metrics["best_val_acc"] >= metrics["val_acc"]

    events = EventAccumulator(str(tmp_path)).Reload()
    scalars = set(events.Tags()["scalars"])
    assert set(tags.EPOCH_TAGS) | {tags.TRAIN_LOSS_STEP} <= scalars
    steps_per_epoch = -(-1800 // 64)  # synthetic: 2000 - 200 validation images, batch 64
    assert [event.step for event in events.Scalars(tags.TEST_ACC)] == [0, steps_per_epoch, 2 * steps_per_epoch]
    assert [event.value for event in events.Scalars(tags.EPOCH)] == [0, 1, 2]  # 0: before training
    assert events.Scalars(tags.TEST_ACC)[-1].value == pytest.approx(metrics["test_acc"])
    assert {tags.CONFIG_TEXT + "/text_summary", tags.PARAMETERS_TEXT + "/text_summary"} <= set(events.Tags()["tensors"])

    checkpoint = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    assert checkpoint["config"]["model"]["hidden_size"] == 16 and "rnn.weight_hh_l0" in checkpoint["model"]
    assert "total" in result.stdout and f"{metrics['num_params']:,}" in result.stdout  # the parameter table


def test_real_idx_files_through_the_cli(tmp_path, idx_root):
    result = run_cli("data=fashion_mnist", f"data.root={idx_root}", "data.download=false", "data.val_size=100",
                     "data.batch_size=16", "model=gru", "model.hidden_size=32", "optimizer.lr=3e-3",
                     "trainer.epochs=4", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["test_acc"] >= 0.9


def test_full_error_shows_the_traceback(tmp_path):
    result = run_cli(*SMALL, "model.hidden_size=0", f"hydra.run.dir={tmp_path}", env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0 and "Traceback" in result.stderr
