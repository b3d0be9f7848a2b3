"""Checkpoints: everything to resume a run exactly, serialised on the training thread and written
atomically off it (src/atomic.py)."""

import io
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from src.atomic import BackgroundWriter
from src.schedules import Schedule

# Keys that may change between a run and its resumption; any other difference in model or data refuses.
RESUMABLE_CHANGES = {"data": {"root", "download", "eval_batch_size"}, "model": set()}


@dataclass
class TrainState:
    """What the loop has done so far: enough to log, checkpoint and resume."""

    epoch: int = 0
    step: int = 0
    best_val_acc: float = -1.0
    best_epoch: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0  # time spent in training epochs (steps), without evaluation or set-up
    history: list[dict[str, float]] = field(default_factory=list)


def checkpoint_bytes(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule | None,
    state: TrainState,
    generator: torch.Generator,
    config: dict,
) -> bytes:
    """The checkpoint of this moment, serialised: model, optimizer, scheduler, loop state, config, RNGs."""
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": schedule.scheduler.state_dict() if schedule is not None else None,
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
    """Queue last.pt (and best.pt when the validation accuracy improved) on the background writer."""
    writer.submit(directory / "last.pt", data)
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


def load_compatible(path: Path, config: dict) -> dict:
    """Load a checkpoint to resume from; refuse one written for another model or data."""
    checkpoint = torch.load(path, weights_only=False, map_location="cpu")
    _refuse_changes(checkpoint["config"], config, path)
    return checkpoint


def restore(
    checkpoint: dict,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule | None,
    generator: torch.Generator,
) -> TrainState:
    """Put model, optimizer, scheduler and every RNG back where the checkpoint left them."""
    model.load_state_dict(checkpoint["model"])
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
    rng = checkpoint["rng"]
    random.setstate(rng["python"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    generator.set_state(rng["shuffle"])
    return TrainState(**checkpoint["state"])
