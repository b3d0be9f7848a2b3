"""Views, heads, schedulers, placement, precision, early stopping, clipping, pictures, describe and evaluate."""

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import TINY, compose_config, metrics_of, train_in_process
from src.config.errors import ConfigError
from src.data.images import make_synthetic
from src.describe import describe
from src.evaluate import evaluate_checkpoint
from src.models.recurrent import RecurrentClassifier
from src.runs import tags
from src.training.checkpoint_reader import read_checkpoint
from src.training.checkpoints import TrainState
from src.training.loop import LoopSettings, Training, train_one_epoch
from src.training.steps import make_step

SMALL = (*TINY, "data.seq_len=6", "data.input_size=5")


def recurrent_parameters(input_size: int, hidden_size: int, num_layers: int, directions: int, gates: int = 4) -> int:
    """Parameters of torch's recurrent stack: per layer and direction, `gates` blocks of input and recurrent
    weights with two biases; layers after the first read every direction's output."""
    total = 0
    for layer in range(num_layers):
        inputs = input_size if layer == 0 else directions * hidden_size
        total += directions * gates * (hidden_size * (inputs + hidden_size) + 2 * hidden_size)
    return total


def first_and_last(run_dir, tag: str) -> tuple[float, float]:
    values = [event.value for event in EventAccumulator(str(run_dir)).Reload().Scalars(tag)]
    return values[0], values[-1]


CLASSES = 4  # the synthetic task's default


@pytest.mark.parametrize(
    ("view", "shape"), [("rows", (6, 5)), ("columns", (5, 6)), ("pixels", (30, 1)), ("permuted", (30, 1))]
)
def test_every_view_trains(tmp_path, view, shape, caplog):
    with caplog.at_level("INFO"):
        metrics = train_in_process(tmp_path, *SMALL, f"data.view={view}", "data.permutation_seed=5")
    assert metrics["status"] == "ok" and metrics["view"] == view
    assert metrics["permutation_seed"] == (5 if view == "permuted" else None)
    assert f"{shape[0]} steps of {shape[1]} features" in caplog.text
    # The model reads what the view gives: its input size is the view's features (2 LSTM layers of 8, head last).
    assert metrics["num_params"] == recurrent_parameters(shape[1], 8, 2, 1) + 8 * CLASSES + CLASSES


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("head", ["last", "flatten", "mean", "max"])
def test_every_head_with_and_without_bidirectional(tmp_path, head, bidirectional):
    metrics = train_in_process(
        tmp_path,
        *SMALL,
        f"model.head={head}",
        f"model.bidirectional={bidirectional}",
        "model.num_layers=2",
        "model.dropout=0.3",
        "optimizer.lr=0.01",
    )
    directions = 2 if bidirectional else 1
    head_inputs = 8 * directions * (6 if head == "flatten" else 1)  # flatten: every one of the 6 steps' outputs
    weights = read_checkpoint(tmp_path / "checkpoints" / "last.pt")["model"]
    assert weights["fc.weight"].shape == (CLASSES, head_inputs)
    assert metrics["num_params"] == recurrent_parameters(5, 8, 2, directions) + head_inputs * CLASSES + CLASSES
    before, after = first_and_last(tmp_path, tags.VAL_LOSS)  # evaluated before training, then after epoch 1
    assert after < before and metrics["val_loss"] == pytest.approx(after)


def lr_per_epoch(run_dir) -> list[float]:
    return [round(event.value, 8) for event in EventAccumulator(str(run_dir)).Reload().Scalars(tags.LR)]


@pytest.mark.parametrize(
    ("scheduler", "expected"),
    [
        (("scheduler=none",), [1e-3] * 3),
        (("scheduler=cosine",), [1e-3, 7.5e-4, 2.5e-4]),  # cosine: T_max = trainer.epochs, per epoch
        # step_size 2 of 3 epochs, gamma 0.3: epochs 1 and 2 at the base rate, epoch 3 at 0.3 of it
        (("scheduler=step", "scheduler.step_size=2"), [1e-3, 1e-3, 3e-4]),
    ],
    ids=["none", "cosine", "step"],
)
def test_epoch_schedulers_change_the_learning_rate_as_documented(tmp_path, scheduler, expected):
    train_in_process(tmp_path, *SMALL, *scheduler, "trainer.epochs=3")
    assert lr_per_epoch(tmp_path) == expected


def test_onecycle_warms_up_and_anneals_within_the_run(tmp_path):
    train_in_process(tmp_path, *SMALL, "scheduler=onecycle", "trainer.epochs=3")
    rates = lr_per_epoch(tmp_path)
    assert rates[-1] < 1e-3 / 25 and rates[0] not in (1e-3, 1e-3 / 25)


def test_streaming_from_host_gives_the_same_run_as_holding_the_data(tmp_path):
    runs = [
        train_in_process(tmp_path / p, *SMALL, f"trainer.data_placement={p}", "trainer.epochs=2")
        for p in ("device", "host")
    ]
    assert runs[0]["test_loss"] == runs[1]["test_loss"] and runs[0]["val_acc"] == runs[1]["val_acc"]


def test_bf16_autocast_trains_a_gru_on_the_cpu(tmp_path):
    metrics = train_in_process(
        tmp_path, *SMALL, "model=gru", "trainer.epochs=3", "optimizer.lr=0.01", "trainer.precision=bf16"
    )
    assert metrics["status"] == "ok" and metrics["test_acc"] > 0.5


def cpu_has_bf16_lstm() -> bool:
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.LSTM(5, 8, batch_first=True)(torch.zeros(1, 6, 5))
    except RuntimeError:
        return False
    return True


def test_bf16_lstm_on_the_cpu_trains_where_onednn_can_and_is_refused_in_one_line_where_not(tmp_path):
    overrides = (*SMALL, "trainer.epochs=3", "optimizer.lr=0.01", "trainer.precision=bf16")
    if cpu_has_bf16_lstm():
        assert train_in_process(tmp_path, *overrides)["test_acc"] > 0.5
    else:
        with pytest.raises(ConfigError, match="trainer.precision='bf16' is not allowed: expected fp32 on this CPU"):
            train_in_process(tmp_path, *overrides)
        assert not (tmp_path / "metrics.json").exists()


def test_early_stopping_stops_after_patience_epochs_without_improvement(tmp_path):
    metrics = train_in_process(
        tmp_path, *SMALL, "trainer.epochs=6", "trainer.early_stopping_patience=1", "optimizer.lr=1e-9"
    )
    assert metrics["stopped_early"] is True and metrics["epochs_completed"] == 2


class RecordingTrial:
    """A study's trial as the job sees it: told each epoch, and whether the epoch is the run's last."""

    def __init__(self) -> None:
        self.told: list[tuple[int, bool]] = []

    def resumed(self, history: list) -> None:
        pass

    def epoch_end(self, epoch: int, metrics: dict, last: bool) -> None:
        self.told.append((epoch, last))


def test_a_trial_is_told_its_early_stopped_epoch_is_the_last_so_that_it_is_never_pruned(tmp_path):
    import time

    from src.training.job import train_job

    trial = RecordingTrial()
    overrides = (*SMALL, "trainer.epochs=6", "trainer.early_stopping_patience=1", "optimizer.lr=1e-9")
    train_job(compose_config(*overrides), tmp_path, None, None, time.perf_counter(), trial=trial)
    assert trial.told == [(1, False), (2, True)]  # the run ends at epoch 2 of 6: nothing after it to save


def test_gradient_clipping_bounds_the_update():
    data = make_synthetic(
        200,
        20,
        6,
        5,
        3,
        0.2,
        0,
        batch_size=200,
        eval_batch_size=50,
        val_size=20,
        view="rows",
        permutation_seed=0,
        normalize=True,
    )

    def update_size(clip: float | None) -> float:
        torch.manual_seed(0)
        model = RecurrentClassifier(5, 3, 6, hidden_size=8)
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
        step = make_step(model, optimizer, clip, "fp32", data.batch_size, cuda_graph=False)
        training = Training(model, data, optimizer, step, TrainState(), torch.Generator().manual_seed(0))
        train_one_epoch(training, LoopSettings(epochs=1, log_every_n_steps=100))  # one batch: one step
        return (torch.cat([p.detach().flatten() for p in model.parameters()]) - before).norm().item()

    assert update_size(1e-3) == pytest.approx(1e-3, rel=1e-3)  # SGD lr 1: the step is the clipped gradient
    assert update_size(None) > 1e-2


def test_a_run_writes_metrics_tensorboard_checkpoints_and_pictures(tiny_run):
    metrics = metrics_of(tiny_run)
    assert tuple(metrics) == tags.METRIC_KEYS
    assert metrics["status"] == "ok" and metrics["epochs_completed"] == 2 and metrics["device"] == "cpu"
    assert metrics["best_val_acc"] >= metrics["val_acc"] and metrics["job_seconds"] > metrics["train_seconds"] > 0
    events = EventAccumulator(str(tiny_run)).Reload()
    assert set(tags.EPOCH_TAGS) | {tags.TRAIN_LOSS_STEP, tags.FINAL_BEST_VAL_ACC} <= set(events.Tags()["scalars"])
    steps_per_epoch = -(-300 // 64)  # synthetic: 400 - 100 validation sequences, batch 64
    assert [event.step for event in events.Scalars(tags.TEST_ACC)] == [0, steps_per_epoch, 2 * steps_per_epoch]
    assert [event.value for event in events.Scalars(tags.EPOCH)] == [0, 1, 2]  # 0: before training
    assert events.Scalars(tags.TEST_ACC)[-1].value == pytest.approx(metrics["test_acc"])
    assert {tags.CONFIG_TEXT + "/text_summary", tags.PARAMETERS_TEXT + "/text_summary"} <= set(events.Tags()["tensors"])
    assert {tags.PREDICTIONS, tags.CONFUSION} <= set(events.Tags()["images"])
    assert len(events.Images(tags.PREDICTIONS)) == 1  # drawn once, at the end
    assert (tiny_run / "predictions.png").stat().st_size > 5000 and (tiny_run / "confusion.png").stat().st_size > 3000
    checkpoint = torch.load(tiny_run / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["config"]["model"]["hidden_size"] == 16 and checkpoint["config"]["model"]["cell"] == "lstm"
    assert "rnn.weight_hh_l0" in checkpoint["model"] and checkpoint["state"]["epoch"] == 2
    assert not list(tiny_run.rglob("*.tmp"))


def test_evaluate_a_checkpoint_without_training(tiny_run, tmp_path):
    report = evaluate_checkpoint(tiny_run / "checkpoints" / "last.pt", "cpu", None, tmp_path)
    trained = metrics_of(tiny_run)
    assert report["test_acc"] == trained["test_acc"] and report["epoch"] == 2
    assert report["test_loss"] == pytest.approx(trained["test_loss"], abs=1e-6)
    assert set(report["per_class_acc"]) == {"class 0", "class 1", "class 2", "class 3"}
    assert json.loads((tmp_path / "evaluation.json").read_text()) == report
    assert (tmp_path / "predictions.png").exists() and (tmp_path / "confusion.png").exists()
    with pytest.raises(ConfigError, match="data_root='/elsewhere'"):
        evaluate_checkpoint(tiny_run / "checkpoints" / "last.pt", "cpu", "/elsewhere", tmp_path)
    with pytest.raises(ConfigError, match="ckpt="):
        evaluate_checkpoint(tmp_path / "nope.pt", "cpu", None, tmp_path)


def test_evaluate_finds_moved_data_with_data_root(tmp_path, idx_root):
    run = tmp_path / "run"
    trained = train_in_process(
        run,
        "data=mnist",
        f"data.root={idx_root}",
        "data.download=false",
        "data.val_size=100",
        "model.hidden_size=8",
        "trainer.epochs=1",
        "trainer.device=cpu",
    )
    moved = tmp_path / "moved"
    idx_root.rename(moved)
    report = evaluate_checkpoint(run / "checkpoints" / "best.pt", "cpu", str(moved), tmp_path / "eval")
    assert report["test_acc"] == trained["test_acc"]


def test_describe_prints_parameters_and_shapes(capsys):
    describe(compose_config())
    out = capsys.readouterr().out
    assert "821,770" in out and "out:    (2, 28, 256)" in out
    assert "h_n:    (2, 2, 256)" in out and "c_n:    (2, 2, 256)" in out
    describe(compose_config("model=gru", "model.bidirectional=true", "model.num_layers=3", "data.view=pixels"))
    out = capsys.readouterr().out
    assert "out:    (2, 784, 512)" in out and "h_n:    (6, 2, 256)" in out and "c_n" not in out
