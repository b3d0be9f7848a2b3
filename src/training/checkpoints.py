"""Checkpoints: everything to resume a run exactly, serialised on the training thread and written
atomically off it (src/runs/atomic.py)."""

import io
import logging
import pickle
import random
import re
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from src.runs.atomic import BackgroundWriter
from src.training.schedules import Schedule

log = logging.getLogger(__name__)

# Keys that may change between a run and its resumption; any other difference in model or data refuses.
RESUMABLE_CHANGES = {"data": {"root", "download", "eval_batch_size"}, "model": set()}
# What a checkpoint's layout is: 2 added the mid-epoch position; files without the key are format 1.
FORMAT = 2
READABLE_FORMATS = (1, 2)
# Where resume looks, newest first: the last checkpoint, the one it replaced, the best one.
CANDIDATES = ("last.pt", "previous.pt", "best.pt")
# seqlab's own classes and functions as checkpoints written before src/ was grouped into packages name them
# in their config, and where they live now.
MOVED_TARGETS = {
    "src.models.RecurrentClassifier": "src.training.models.RecurrentClassifier",
    "src.data.load_images": "src.data.images.load_images",
    "src.data.make_synthetic": "src.data.images.make_synthetic",
    "src.array_files.load_arrays": "src.data.array_files.load_arrays",
    "src.uea.load_uea": "src.data.uea.load_uea",
}
# How torch's safe loader (weights_only=True) names what it refused to build: a function or class the file
# asks for, which loading with weights_only=False would have imported and called.
ASKS_FOR = re.compile(r"GLOBAL (\S+)|reduce for unrecognized function (.+)|but got (<class .+?>)")
# Lines of torch's message that give advice (load with weights_only=False, file an issue), not the reason.
TORCH_ADVICE = ("Weights only load failed", "Please file an issue", "Check the documentation")


class CheckpointError(ValueError):
    """A file that is not a whole seqlab checkpoint of a format this version reads."""


class UnknownFormat(CheckpointError):
    """A seqlab checkpoint of a format this version does not read: refused, never skipped for an older one."""


class UnsafeCheckpoint(CheckpointError):
    """A file that asks the loader to run code (a crafted pickle): an attack, not damage; refused, never
    skipped for an older one, and nothing in it is run."""


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
) -> bytes:
    """The checkpoint of this moment, serialised: model, optimizer, scheduler, loop state, config, RNGs."""
    checkpoint = {
        "format": FORMAT,
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


def read_checkpoint(path: Path) -> dict:
    """Load a whole seqlab checkpoint with torch's safe loader (tensors and plain values only, so no code
    in the file can run); UnsafeCheckpoint or CheckpointError (one line) for anything else."""
    try:
        with path.open("rb") as handle:
            head = handle.read(2)
        # torch.save writes a zip archive (before torch 1.6, pickles of protocol 2): a later protocol is a
        # bare pickle from elsewhere, refused before torch's loader warns about it on stderr.
        bare = len(head) == 2 and head[0] == pickle.PROTO[0] and head[1] > 2
        checkpoint = None if bare else torch.load(path, weights_only=True, map_location="cpu")
    except Exception as error:  # torch's zip and pickle errors: a crafted, truncated or foreign file
        raise _refusal(path, error) from error
    if bare:
        raise _unsafe(path, f"is a bare pickle of protocol {head[1]}, which torch.save never writes")
    if not isinstance(checkpoint, dict) or not {"model", "config", "state"} <= set(checkpoint):
        raise CheckpointError(f"{path} is not a seqlab checkpoint (written by src.run, with model, config and state)")
    version = checkpoint.get("format", 1)
    if version not in READABLE_FORMATS:
        raise UnknownFormat(
            f"{path} has checkpoint format {version!r}; this seqlab reads formats "
            f"{', '.join(map(str, READABLE_FORMATS))}: use the seqlab that wrote it, or start over with "
            "trainer.resume=false"
        )
    for section in ("model", "data"):
        part = checkpoint["config"].get(section) or {}
        if part.get("_target_") in MOVED_TARGETS:
            part["_target_"] = MOVED_TARGETS[part["_target_"]]
    return checkpoint


def _unsafe(path: Path, why: str) -> "UnsafeCheckpoint":
    return UnsafeCheckpoint(
        f"{path} is not a safe seqlab checkpoint: it {why}, and a full load could run code from it; "
        "refused, nothing in it was run"
    )


def _refusal(path: Path, error: Exception) -> CheckpointError:
    """Why torch's safe loader refused path, in one line: it asks for code, or it is damaged or foreign."""
    if isinstance(error, pickle.UnpicklingError) and (asked := ASKS_FOR.search(str(error))):
        return _unsafe(path, f"asks to import {next(filter(None, asked.groups()))}")
    reasons = [line.strip() for line in str(error).splitlines() if line.strip() and not line.startswith(TORCH_ADVICE)]
    reason = reasons[0].split(". ")[0][:120] if reasons else ""  # its first sentence; the rest is torch's advice
    return CheckpointError(f"{path} is not a seqlab checkpoint, or not a whole one ({type(error).__name__}: {reason})")


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
