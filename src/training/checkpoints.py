"""Checkpoints: everything to resume a run exactly, serialised on the training thread and written
atomically off it (src/runs/atomic.py)."""

import io
import logging
import random
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from src.runs.atomic import BackgroundWriter
from src.training.checkpoint_reader import (
    FORMAT,
    CheckpointError,
    UnknownFormat,
    UnsafeCheckpoint,
    load_weights,
    read_checkpoint,
)
from src.training.schedules import Schedule

log = logging.getLogger(__name__)

# Keys that may change between a run and its resumption; any other difference in model or data refuses.
RESUMABLE_CHANGES = {"data": {"root", "download", "eval_batch_size"}, "model": set()}
# Where resume looks, newest first: the last checkpoint, the one it replaced, the best one.
CANDIDATES = ("last.pt", "previous.pt", "best.pt")


@dataclass
class TrainState:
    """What the loop has done so far: enough to log, checkpoint and resume."""

    epoch: int = 0
    step: int = 0
    best_val_acc: float = -1.0
    best_epoch: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0  # time spent in training epochs (steps), without evaluation or set-up
    # Mid-epoch (a preempted run): batches of the current epoch already trained, and their sums so far.
    batch_in_epoch: int = 0
    epoch_loss_sum: float = 0.0
    epoch_correct: int = 0
    epoch_seconds: float = 0.0  # and the seconds they took
    # Drawn at a fresh start and kept through resumptions: files a fresh start leaves from an earlier
    # run in the same directory are never taken for this run's.
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    history: list[dict[str, float]] = field(default_factory=list)


def checkpoint_bytes(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule | None,
    state: TrainState,
    generator: torch.Generator,
    config: dict,
    scaler: torch.amp.GradScaler | None = None,
) -> bytes:
    """The checkpoint of this moment, serialised: model, optimizer, scheduler, fp16's loss scale, loop
    state, config, RNGs."""
    checkpoint = {
        "format": FORMAT,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": schedule.scheduler.state_dict() if schedule is not None else None,
        # Its scale and growth count (plain numbers): a resumed fp16 run scales its losses as it would have.
        "scaler": scaler.state_dict() if scaler is not None else None,
        "state": asdict(state),
        "config": config,
        "rng": {
            "python": random.getstate(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "shuffle": generator.get_state(),
        },
    }
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


def save_checkpoint(directory: Path, data: bytes, writer: BackgroundWriter, *, is_best: bool) -> None:
    """Queue last.pt (and best.pt when the validation accuracy improved) on the background writer; the
    last.pt it replaces is kept as previous.pt, for a resume that finds the new one damaged."""
    writer.submit(directory / "last.pt", data, keep_previous=directory / "previous.pt")
    if is_best:
        writer.submit(directory / "best.pt", data)


def _refuse_changes(saved: dict, config: dict, path: Path) -> None:
    for section, free in RESUMABLE_CHANGES.items():
        keys = (set(saved.get(section, {})) | set(config.get(section, {}))) - free
        for key in sorted(keys):
            before, now = saved.get(section, {}).get(key), config.get(section, {}).get(key)
            if before != now:
                raise ValueError(
                    f"trainer.resume: {path} was written with {section}.{key}={before!r}, this run has "
                    f"{now!r}; resume with the same {section} config or use a new hydra.run.dir"
                )


def load_latest(directory: Path, config: dict) -> tuple[dict, Path] | None:
    """The newest checkpoint in directory that reads back whole, and its path; None if there is none.

    Refuses one written for another model or data, or of an unknown format; if every file is damaged,
    one line names them and says to start over.
    """
    found = [directory / name for name in CANDIDATES if (directory / name).is_file()]
    loaded, damaged = [], []
    for path in found:
        try:
            loaded.append((read_checkpoint(path), path))
        except (UnknownFormat, UnsafeCheckpoint):  # not damage: a resume must not fall back past them
            raise
        except CheckpointError as error:
            damaged.append(str(error))
    if found and not loaded:
        raise CheckpointError(f"trainer.resume: {'; '.join(damaged)}; start over with trainer.resume=false")
    if not loaded:
        return None
    # The newest file names the run (a fresh start in a used directory leaves the earlier run's files
    # behind); of that run's files, the furthest one (first of equals: last.pt).
    newest = max(loaded, key=lambda item: item[1].stat().st_mtime_ns)[0]["state"].get("run_id")
    loaded = [item for item in loaded if item[0]["state"].get("run_id") == newest]
    checkpoint, path = max(loaded, key=lambda item: item[0]["state"]["step"])
    _refuse_changes(checkpoint["config"], config, path)
    why = f" because {'; '.join(damaged)}" if damaged else ""
    log.info("resume: using %s, the newest checkpoint that reads back whole%s", path, why)
    return checkpoint, path


def restore(
    checkpoint: dict,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule | None,
    generator: torch.Generator,
    scaler: torch.amp.GradScaler | None = None,
    source: Path = Path("checkpoint"),
) -> TrainState:
    """Put model, optimizer, scheduler, fp16's loss scale and every RNG back where the checkpoint (the file
    `source`) left them."""
    load_weights(model, checkpoint["model"], source)
    capturable = [group.get("capturable") for group in optimizer.param_groups]
    optimizer.load_state_dict(checkpoint["optimizer"])
    for group, was in zip(optimizer.param_groups, capturable, strict=True):
        # A CUDA-graph run saved lr as a GPU tensor and capturable=True (steps.make_capturable); this run
        # starts from plain settings and chooses its own step, on whatever device it has.
        group["lr"] = float(group["lr"])
        if was is not None:
            group["capturable"] = was
    if schedule is not None and checkpoint["scheduler"] is not None:
        schedule.scheduler.load_state_dict(checkpoint["scheduler"])
    if scaler is not None and checkpoint.get("scaler"):  # checkpoints before the scale was saved have none
        scaler.load_state_dict(checkpoint["scaler"])
    rng = checkpoint["rng"]
    random.setstate(rng["python"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    generator.set_state(rng["shuffle"])
    return TrainState(**checkpoint["state"])
