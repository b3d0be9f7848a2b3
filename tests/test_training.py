"""Short real trainings: tiny IDX files through torchvision, into the loop, to high accuracy."""

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from conftest import TINY, train_in_process
from src.data.images import load_images
from src.models.recurrent import RecurrentClassifier
from src.runs import tags
from src.training.checkpoint_reader import read_checkpoint
from src.training.checkpoints import TrainState
from src.training.loop import LoopSettings, Training, fit
from src.training.scoring import evaluate
from src.training.steps import make_step, train_step


def train_on(idx_root, tmp_path, seed: int = 0, epochs: int = 6) -> tuple[TrainState, list[tuple[int, bool]]]:
    torch.manual_seed(seed)
    data = load_images(
        "mnist",
        str(idx_root),
        download=False,
        batch_size=16,
        eval_batch_size=256,
        val_size=100,
        view="rows",
        permutation_seed=0,
        normalize=True,
        split_seed=0,
    )
    model = RecurrentClassifier(data.input_size, data.num_classes, data.seq_len, cell="gru", hidden_size=32)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    state, ends = TrainState(), []
    with SummaryWriter(str(tmp_path / "events")) as writer:
        step = make_step(model, optimizer, 1.0, "fp32", data.batch_size, cuda_graph=False)
        fit(
            Training(model, data, optimizer, step, state, torch.Generator().manual_seed(seed)),
            LoopSettings(epochs=epochs, log_every_n_steps=5),
            writer=writer,
            on_epoch_end=lambda state, is_best, is_last: ends.append((state.epoch, is_best, is_last)),
        )
    return state, ends


def test_learns_an_easy_task_from_idx_files(idx_root, tmp_path):
    state, ends = train_on(idx_root, tmp_path)
    before, after = state.history[0], state.history[-1]
    assert before[tags.TEST_ACC] < 0.3  # untrained: about chance on 10 classes
    assert after[tags.TEST_ACC] >= 0.95 and after[tags.VAL_ACC] >= 0.95
    assert after[tags.TRAIN_LOSS] < state.history[1][tags.TRAIN_LOSS]
    assert state.epoch == 6 and state.step == 6 * -(-500 // 16)
    assert [epoch for epoch, _, _ in ends] == [1, 2, 3, 4, 5, 6] and ends[0][1]  # the hook after every epoch
    assert [is_last for _, _, is_last in ends] == [False] * 5 + [True]
    assert 0 < state.train_seconds <= sum(h[tags.EPOCH_SECONDS] for h in state.history[1:]) + 1e-9
    assert not list(tmp_path.glob("*.png")) and not (tmp_path / "checkpoints").exists()  # fit writes no files


def test_same_seed_same_run(idx_root, tmp_path):
    timing = {tags.EPOCH_SECONDS, tags.SAMPLES_PER_SECOND}
    runs = [train_on(idx_root, tmp_path / name, seed=3, epochs=1)[0] for name in ("a", "b")]
    first, second = ([{k: v for k, v in h.items() if k not in timing} for h in run.history] for run in runs)
    assert first == second


def test_evaluate_changes_no_gradient_and_counts_every_sample(idx_root):
    data = load_images(
        "mnist",
        str(idx_root),
        download=False,
        batch_size=32,
        eval_batch_size=64,
        val_size=100,
        view="rows",
        permutation_seed=0,
        normalize=False,
        split_seed=0,
    )
    model = RecurrentClassifier(data.input_size, data.num_classes, data.seq_len, hidden_size=8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: gradients exist, weights stay
    x, y = next(data.batches("train"))
    train_step(model, x, y, optimizer, None)
    gradients = [p.grad.clone() for p in model.parameters()]
    loss, accuracy = evaluate(model, data, "test")
    assert all(
        torch.equal(p.grad, g) for p, g in zip(model.parameters(), gradients, strict=True)
    )  # no backward, no zeroing
    assert not model.training
    # Counts every sample: the mean over the test split equals the per-sample losses' mean.
    with torch.no_grad():
        logits = torch.cat([model(x) for x, _ in data.batches("test")])
    expected = torch.nn.functional.cross_entropy(logits, data.test_y).item()
    assert abs(loss - expected) < 1e-5 and accuracy == (logits.argmax(1) == data.test_y).sum().item() / len(data.test_y)


def test_a_run_that_scores_the_test_set_once_ends_with_the_same_figures(tmp_path):
    """trainer.test_every_epoch=false: the same training (scoring draws nothing at random), val after every
    epoch, and the test set scored once, after the last epoch, giving the figures the last epoch's scoring gives."""
    overrides = (*TINY, "trainer.epochs=3", "model.dropout=0.2")
    every = train_in_process(tmp_path / "every", *overrides)
    once = train_in_process(tmp_path / "once", *overrides, "trainer.test_every_epoch=false")
    assert once == {**every, **{key: once[key] for key in ("seconds", "train_seconds", "job_seconds")}}
    val_steps = {}
    for name, test_points in (("every", 4), ("once", 1)):  # epochs 0 to 3, or only the last
        events = EventAccumulator(str(tmp_path / name)).Reload()
        val_steps[name] = [event.step for event in events.Scalars(tags.VAL_ACC)]
        assert [event.step for event in events.Scalars(tags.TEST_ACC)] == val_steps[name][-test_points:]
    assert len(val_steps["once"]) == 4 and val_steps["once"] == val_steps["every"]
    (scored,) = EventAccumulator(str(tmp_path / "once")).Reload().Scalars(tags.TEST_ACC)
    assert scored.value == pytest.approx(every["test_acc"])  # float32 in the event file
    # The last checkpoint holds it too: a reloaded run's history ends with its test figures.
    history = read_checkpoint(tmp_path / "once" / "checkpoints" / "last.pt")["state"]["history"]
    assert [tags.TEST_ACC in row for row in history] == [False, False, False, True]
