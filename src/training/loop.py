"""The training loop: one epoch, one evaluation, and `fit` that strings them together.

The loop writes no files: it hands each epoch's end (the state, whether the epoch is the best, whether it
is the last) to the `on_epoch_end` its caller gives; the job checkpoints there and tells a study's trial.
"""

import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from src.data.batched import BatchedData
from src.runs import tags
from src.training.checkpoints import TrainState
from src.training.schedules import Schedule
from src.training.scoring import evaluate
from src.training.steps import Step

log = logging.getLogger(__name__)
# (state, is_best, is_last) after every epoch; the last is the final epoch or the one early stopping ends on.
EpochEnd = Callable[[TrainState, bool, bool], None]


class Diverged(RuntimeError):
    """The training loss became non-finite or exceeded the ceiling a healthy classifier never reaches."""

    def __init__(self, loss: float, epoch: int, step: int) -> None:
        super().__init__(f"training loss {loss:.4g} at epoch {epoch}, step {step}")
        self.epoch, self.step = epoch, step


class Stopped(Exception):
    """The job asked the loop to stop (a preemption signal) after a step; the state says where, and the
    shuffle generator is back at the epoch's start, so that a resume redraws the epoch's order."""


def check_loss(loss: float, max_loss: float | None, epoch: int, step: int) -> None:
    """Raise Diverged if the loss is NaN/inf or above max_loss (None: no ceiling)."""
    if not math.isfinite(loss) or (max_loss is not None and loss > max_loss):
        raise Diverged(loss, epoch, step)


@dataclass(frozen=True)
class LoopSettings:
    """How the loop runs: the trainer's settings it reads."""

    epochs: int
    log_every_n_steps: int = 50
    max_loss: float | None = None  # a training loss above this is divergence (None: only NaN/inf)
    progress: bool = False  # a tqdm bar, on a terminal
    patience: int | None = None  # stop after this many epochs without a better validation accuracy
    precision: str = "fp32"
    test_every_epoch: bool = True  # false: the test set is scored once, when the loop ends

    @classmethod
    def of(cls, trainer: Any) -> "LoopSettings":
        """The settings of a composed `trainer` config."""
        return cls(
            epochs=trainer.epochs,
            log_every_n_steps=trainer.log_every_n_steps,
            max_loss=trainer.max_loss,
            progress=trainer.progress,
            patience=trainer.early_stopping_patience,
            precision=str(trainer.precision),
            test_every_epoch=trainer.test_every_epoch,
        )


@dataclass
class Training:
    """What the loop trains, and where it stands: model, data, optimizer, step, schedule, loop state, the
    generator that shuffles the training split, and fp16's loss scaler (its step's)."""

    model: nn.Module
    data: BatchedData
    optimizer: torch.optim.Optimizer
    step: Step
    state: TrainState
    generator: torch.Generator
    schedule: Schedule | None = None
    scaler: torch.amp.GradScaler | None = None


def train_one_epoch(
    training: Training,
    settings: LoopSettings,
    writer: SummaryWriter | None = None,
    should_stop: Callable[[], object] | None = None,
) -> tuple[float, float]:
    """Train over one shuffled pass of the training split; return its mean loss and accuracy.

    A state stopped mid-epoch (state.batch_in_epoch > 0) continues that epoch where it stopped. When
    should_stop() is true after a step, the state records the position and Stopped is raised."""
    model, data, state, generator = training.model, training.data, training.state, training.generator
    step, schedule, log_every_n_steps, max_loss = (
        training.step,
        training.schedule,
        settings.log_every_n_steps,
        settings.max_loss,
    )
    model.train()
    shuffle_start = generator.get_state()  # the epoch's order is drawn from here
    # Sums stay on the device so the loop never waits for the GPU except at logging steps; a resumed
    # epoch starts from the sums saved with it (float32 values, restored exactly).
    loss_sum = torch.tensor(state.epoch_loss_sum, device=data.device)
    correct = torch.tensor(state.epoch_correct, device=data.device, dtype=torch.long)
    batches = data.batches("train", shuffle=True, generator=generator, first_batch=state.batch_in_epoch)
    bar = tqdm(
        batches,
        initial=state.batch_in_epoch,
        total=data.num_batches("train"),
        desc=f"epoch {state.epoch + 1}",
        leave=False,
        disable=not settings.progress,
        dynamic_ncols=True,
    )
    for x, y in bar:
        loss, logits = step(x, y)
        if schedule is not None:
            schedule.after_step()
        state.step += 1
        loss_sum += loss * len(y)
        correct += (logits.argmax(dim=1) == y).sum()
        if state.step % log_every_n_steps == 0:
            value = loss.item()
            check_loss(value, max_loss, state.epoch + 1, state.step)
            if writer is not None:
                writer.add_scalar(tags.TRAIN_LOSS_STEP, value, state.step)
            bar.set_postfix(loss=f"{value:.4f}")
        state.batch_in_epoch += 1
        if should_stop is not None and should_stop():
            state.epoch_loss_sum, state.epoch_correct = loss_sum.item(), int(correct.item())
            generator.set_state(shuffle_start)
            raise Stopped
    state.batch_in_epoch, state.epoch_loss_sum, state.epoch_correct = 0, 0.0, 0
    count = len(data.train_y)
    mean_loss = loss_sum.item() / count
    check_loss(mean_loss, max_loss, state.epoch + 1, state.step)
    return mean_loss, correct.item() / count


def fit(
    training: Training,
    settings: LoopSettings,
    *,
    writer: SummaryWriter,
    on_epoch_end: EpochEnd | None = None,
    should_stop: Callable[[], object] | None = None,
) -> TrainState:
    """Train until settings.epochs (or settings.patience epochs without a better validation accuracy),
    evaluating val and test (with settings.test_every_epoch false, test only after the last epoch) and
    calling `on_epoch_end` after each epoch; raise Stopped once should_stop() is true."""
    model, data, state, precision = training.model, training.data, training.state, settings.precision
    every = settings.test_every_epoch
    if state.step == 0:  # not on resuming, even within the first epoch
        _log_epoch(writer, state, _evaluate_all(model, data, precision, test=every))
    settings = replace(settings, progress=settings.progress and sys.stdout.isatty())
    while state.epoch < settings.epochs and not state.stopped_early:
        started = time.perf_counter() - state.epoch_seconds  # a resumed epoch adds the time it took before
        try:
            train_loss, train_acc = train_one_epoch(training, settings, writer, should_stop)
        except Stopped:
            state.epoch_seconds = time.perf_counter() - started  # saved with the mid-epoch checkpoint
            raise
        state.epoch_seconds = 0.0
        seconds = time.perf_counter() - started  # the epoch's steps: train_loss.item() waited for the last
        state.epoch += 1
        state.train_seconds += seconds
        metrics = {
            tags.TRAIN_LOSS: train_loss,
            tags.TRAIN_ACC: train_acc,
            **_evaluate_all(model, data, precision, test=every),
            tags.LR: float(training.optimizer.param_groups[0]["lr"]),
            tags.EPOCH_SECONDS: seconds,
            tags.SAMPLES_PER_SECOND: len(data.train_y) / seconds,
        }
        if training.schedule is not None:
            training.schedule.after_epoch(metrics[tags.VAL_ACC])
        is_best = metrics[tags.VAL_ACC] > state.best_val_acc
        if is_best:
            state.best_val_acc, state.best_epoch = metrics[tags.VAL_ACC], state.epoch
        patience = settings.patience
        state.stopped_early = patience is not None and state.epoch - state.best_epoch >= patience
        if not every and (state.epoch >= settings.epochs or state.stopped_early):
            metrics |= _score_test(model, data, precision)  # the final model's, logged and checkpointed with it
        _log_epoch(writer, state, metrics)
        if on_epoch_end is not None:
            on_epoch_end(state, is_best, state.epoch >= settings.epochs or state.stopped_early)
    # The last record has no test figures only when no epoch ran here: epochs=0, or a run whose loop had
    # ended is resumed with test_every_epoch changed.
    if state.history and tags.TEST_ACC not in state.history[-1]:
        _log_final_test(writer, state, _score_test(model, data, precision))
    if state.stopped_early:
        log.info(
            "early stop: no better val/acc for %d epochs (best %.4f at epoch %d)",
            settings.patience,
            state.best_val_acc,
            state.best_epoch,
        )
    return state


def _evaluate_all(model: nn.Module, data: BatchedData, precision: str, test: bool = True) -> dict[str, float]:
    val_loss, val_acc = evaluate(model, data, "val", precision) if len(data.val_y) else (math.nan, math.nan)
    scores = {tags.VAL_LOSS: val_loss, tags.VAL_ACC: val_acc}
    return scores | _score_test(model, data, precision) if test else scores


def _score_test(model: nn.Module, data: BatchedData, precision: str) -> dict[str, float]:
    test_loss, test_acc = evaluate(model, data, "test", precision)
    return {tags.TEST_LOSS: test_loss, tags.TEST_ACC: test_acc}


def _log_final_test(writer: SummaryWriter, state: TrainState, scores: dict[str, float]) -> None:
    """Test figures for the last logged epoch, which had none: at its step, beside its other scalars."""
    for tag, value in scores.items():
        writer.add_scalar(tag, value, state.step)
    writer.flush()
    state.history[-1].update(scores)
    log.info("epoch %d, test set: %s", state.epoch, "  ".join(f"{tag} {value:.4g}" for tag, value in scores.items()))


def _log_epoch(writer: SummaryWriter, state: TrainState, metrics: dict[str, float]) -> None:
    # Every scalar shares the optimizer-step axis, so one purge_step cleans up after a killed run.
    writer.add_scalar(tags.EPOCH, state.epoch, state.step)
    for tag, value in metrics.items():
        writer.add_scalar(tag, value, state.step)
    writer.flush()  # TensorBoard shows the epoch now, not at the writer's next timed flush
    state.history.append({"epoch": state.epoch, **metrics})
    log.info("epoch %d: %s", state.epoch, "  ".join(f"{tag} {value:.4g}" for tag, value in metrics.items()))
