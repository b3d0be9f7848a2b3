"""The training loop: one epoch, one evaluation, and `fit` that strings them together."""

import logging
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from src import tags
from src.checkpoints import TrainState, save_checkpoint
from src.data import SequenceData

log = logging.getLogger(__name__)


class Diverged(RuntimeError):
    """The training loss became non-finite or exceeded the ceiling a healthy classifier never reaches."""

    def __init__(self, loss: float, epoch: int, step: int) -> None:
        super().__init__(f"training loss {loss:.4g} at epoch {epoch}, step {step}")
        self.epoch, self.step = epoch, step


def check_loss(loss: float, max_loss: float | None, epoch: int, step: int) -> None:
    """Raise Diverged if the loss is NaN/inf or above max_loss (None: no ceiling)."""
    if not math.isfinite(loss) or (max_loss is not None and loss > max_loss):
        raise Diverged(loss, epoch, step)


def train_one_epoch(
    model: nn.Module, data: SequenceData, optimizer: torch.optim.Optimizer, state: TrainState, *,
    generator: torch.Generator, grad_clip_norm: float | None, log_every_n_steps: int, max_loss: float | None,
    writer: SummaryWriter, progress: bool,
) -> tuple[float, float]:
    """Train over one shuffled pass of the training split; return its mean loss and accuracy."""
    model.train()
    # Sums stay on the device so the loop never waits for the GPU except at logging steps.
    loss_sum = torch.zeros((), device=data.train_y.device)
    correct = torch.zeros((), device=data.train_y.device, dtype=torch.long)
    batches = data.batches("train", shuffle=True, generator=generator)
    bar = tqdm(batches, total=data.num_batches("train"), desc=f"epoch {state.epoch + 1}", leave=False,
               disable=not progress, dynamic_ncols=True)
    for x, y in bar:
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip_norm is not None:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip_norm)
        optimizer.step()
        state.step += 1
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(dim=1) == y).sum()
        if state.step % log_every_n_steps == 0:
            value = loss.item()
            check_loss(value, max_loss, state.epoch + 1, state.step)
            writer.add_scalar(tags.TRAIN_LOSS_STEP, value, state.step)
            bar.set_postfix(loss=f"{value:.4f}")
    count = len(data.train_y)
    mean_loss = loss_sum.item() / count
    check_loss(mean_loss, max_loss, state.epoch + 1, state.step)
    return mean_loss, correct.item() / count


@torch.inference_mode()
def evaluate(model: nn.Module, data: SequenceData, split: str) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of the model on a split, in eval mode."""
    model.eval()
    loss_sum = torch.zeros((), device=data.train_y.device)
    correct = torch.zeros((), device=data.train_y.device, dtype=torch.long)
    for x, y in data.batches(split):
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(dim=1) == y).sum()
    count = len(getattr(data, f"{split}_y"))
    return loss_sum.item() / count, correct.item() / count


def fit(
    model: nn.Module, data: SequenceData, optimizer: torch.optim.Optimizer, state: TrainState, *,
    epochs: int, generator: torch.Generator, grad_clip_norm: float | None, log_every_n_steps: int,
    max_loss: float | None, writer: SummaryWriter, progress: bool, checkpoint_dir: Path, config: dict,
) -> TrainState:
    """Train until `epochs`, evaluating val and test after each epoch and checkpointing it."""
    if state.epoch == 0:
        _log_epoch(writer, state, _evaluate_all(model, data))
    progress = progress and sys.stdout.isatty()
    while state.epoch < epochs:
        started = time.perf_counter()
        train_loss, train_acc = train_one_epoch(
            model, data, optimizer, state, generator=generator, grad_clip_norm=grad_clip_norm,
            log_every_n_steps=log_every_n_steps, max_loss=max_loss, writer=writer, progress=progress,
        )
        seconds = time.perf_counter() - started
        state.epoch += 1
        metrics = {
            tags.TRAIN_LOSS: train_loss, tags.TRAIN_ACC: train_acc, **_evaluate_all(model, data),
            tags.LR: optimizer.param_groups[0]["lr"], tags.EPOCH_SECONDS: seconds,
            tags.SAMPLES_PER_SECOND: len(data.train_y) / seconds,
        }
        is_best = metrics[tags.VAL_ACC] > state.best_val_acc
        state.best_val_acc = max(state.best_val_acc, metrics[tags.VAL_ACC])
        _log_epoch(writer, state, metrics)
        save_checkpoint(checkpoint_dir, model, optimizer, state, generator, config, is_best=is_best)
    return state


def _evaluate_all(model: nn.Module, data: SequenceData) -> dict[str, float]:
    val_loss, val_acc = evaluate(model, data, "val") if len(data.val_y) else (math.nan, math.nan)
    test_loss, test_acc = evaluate(model, data, "test")
    return {tags.VAL_LOSS: val_loss, tags.VAL_ACC: val_acc, tags.TEST_LOSS: test_loss, tags.TEST_ACC: test_acc}


def _log_epoch(writer: SummaryWriter, state: TrainState, metrics: dict[str, float]) -> None:
    # Every scalar shares the optimizer-step axis, so one purge_step cleans up after a killed run.
    writer.add_scalar(tags.EPOCH, state.epoch, state.step)
    for tag, value in metrics.items():
        writer.add_scalar(tag, value, state.step)
    writer.flush()
    state.history.append({"epoch": state.epoch, **metrics})
    log.info("epoch %d: %s", state.epoch, "  ".join(f"{tag} {value:.4g}" for tag, value in metrics.items()))
