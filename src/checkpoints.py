"""Checkpoints written atomically: a reader never sees a half-written file."""

import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from src.train import TrainState


def write_atomically(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same directory, fsync it, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        torch.save(obj, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def save_checkpoint(
    directory: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: "TrainState",
    generator: torch.Generator, config: dict, *, is_best: bool,
) -> None:
    """Write last.pt (and best.pt when the validation accuracy improved) with everything to resume."""
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": state.epoch,
        "step": state.step,
        "best_val_acc": state.best_val_acc,
        "history": state.history,
        "config": config,
        "rng": {
            "python": random.getstate(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "shuffle": generator.get_state(),
        },
    }
    write_atomically(checkpoint, directory / "last.pt")
    if is_best:
        write_atomically(checkpoint, directory / "best.pt")
