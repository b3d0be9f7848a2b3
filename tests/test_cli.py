"""The real CLI in a subprocess: what it writes, and how it refuses bad input."""

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
    assert [event.step for event in events.Scalars(tags.TEST_ACC)] == [0, 1, 2]  # 0: before training
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


BAD_INPUTS = [
    ("model=grux", "Could not find 'model/grux'", "gru lstm rnn"),
    ("model.hiden_size=3", "hiden_size", "RecurrentSchema"),
    ("model.hidden_size=abc", "model.hidden_size=abc", "Integer"),
    ("model.hidden_size=0", "model.hidden_size=0", "an integer > 0"),
    ("model.head=first", "model.head='first'", "last | flatten | mean | max"),
    ("model.dropout=1.0", "model.dropout=1.0", "[0, 1)"),
    ("data.view=diagonal", "data.view='diagonal'", "rows | columns | pixels | permuted"),
    ("trainer.device=tpu", "trainer.device='tpu'", "auto | cpu | cuda | cuda:N"),
    ("optimizer.lr=-1", "optimizer.lr=-1", "a number > 0"),
    ("trainer.epochs=-2", "trainer.epochs=-2", "an integer >= 0"),
]


@pytest.mark.parametrize(("override", "names", "allowed"), BAD_INPUTS)
def test_bad_input_is_one_line_and_non_zero(tmp_path, override, names, allowed):
    result = run_cli(*SMALL, override, f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and names in last and allowed in last
    assert not (tmp_path / "metrics.json").exists()


def test_full_error_shows_the_traceback(tmp_path):
    result = run_cli(*SMALL, "model.hidden_size=0", f"hydra.run.dir={tmp_path}", env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0 and "Traceback" in result.stderr
