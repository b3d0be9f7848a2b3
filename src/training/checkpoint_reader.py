"""Reading a checkpoint: torch's safe loader only (tensors and plain values, so no code in the file can
run), and one line for any file that is not a whole seqlab checkpoint of a format this version reads."""

import pickle
import re
from pathlib import Path

import torch

from src.config.schema import buildable_targets

# What a checkpoint's layout is: 2 added the mid-epoch position; files without the key are format 1.
FORMAT = 2
READABLE_FORMATS = (1, 2)
# seqlab's own classes and functions as older checkpoints name them in their config, and where they live
# now. What a checkpoint may build is not this table but the schemas' targets (src/config/schema.py).
MOVED_TARGETS = {
    "src.models.RecurrentClassifier": "src.models.recurrent.RecurrentClassifier",
    "src.training.models.RecurrentClassifier": "src.models.recurrent.RecurrentClassifier",
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
    if not isinstance(checkpoint["config"], dict):
        raise CheckpointError(f"{path} is not a seqlab checkpoint: its config is not a mapping")
    for section in ("model", "data"):
        part = checkpoint["config"].get(section) or {}
        if part.get("_target_") in MOVED_TARGETS:
            part["_target_"] = MOVED_TARGETS[part["_target_"]]
    # The config names what a rebuild instantiates: a file naming anything else (os.system, say) is an attack.
    for target in _targets(checkpoint["config"]):
        if not _buildable(target):
            raise _unsafe(
                path,
                f"names {target} to build, which is not a seqlab model or data set, nor a torch optimizer or scheduler",
            )
    return checkpoint


def load_weights(model: torch.nn.Module, weights: dict, path: Path) -> None:
    """model.load_state_dict(weights), or one line naming the file when the weights do not fit the model that
    the file's own config describes (an edited file, or one put together from two runs)."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:  # torch: a header line, then a tab-indented line per missing or misfit tensor
        reasons = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
        raise CheckpointError(
            f"{path}: its weights do not fit the model its config describes ({(reasons or [str(error)])[0]}); "
            "the file was edited or put together from two runs"
        ) from None


def _targets(node: object) -> list[str]:
    """Every `_target_` in a config, however deep."""
    if isinstance(node, dict):
        own = [str(node["_target_"])] if "_target_" in node else []
        return own + [target for value in node.values() for target in _targets(value)]
    if isinstance(node, list):
        return [target for value in node for target in _targets(value)]
    return []


def _buildable(target: str) -> bool:
    """seqlab's models and data sets, and torch's optimizer and scheduler classes: what a config builds."""
    if target in buildable_targets():
        return True
    module, _, name = target.rpartition(".")
    if module not in ("torch.optim", "torch.optim.lr_scheduler"):
        return False
    built = getattr(torch.optim if module == "torch.optim" else torch.optim.lr_scheduler, name, None)
    kinds = (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    return isinstance(built, type) and issubclass(built, kinds)


def _unsafe(path: Path, why: str) -> UnsafeCheckpoint:
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
