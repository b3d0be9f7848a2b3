"""metrics.json: the final figures of one run, written atomically and read back by resumes and reports."""

import json
import math
from pathlib import Path
from typing import Protocol

from src.runs import tags
from src.runs.atomic import write_bytes_atomically


class RunState(Protocol):
    """What metrics.json reads of a run's loop state (src/training/checkpoints.py's TrainState has it)."""

    history: list[dict]
    best_val_acc: float
    best_epoch: int
    epoch: int
    train_seconds: float
    stopped_early: bool


METRICS_FILE = "metrics.json"


def final_metrics(
    state: RunState,
    *,
    status: str,
    num_params: int,
    seconds: float,
    job_seconds: float,
    device: str,
    ended_at: dict | None = None,
    data: dict,
) -> dict:
    """The last epoch's figures, the best validation accuracy, how the run ended (`ok`, `diverged` or
    `pruned`, with `ended_at` filed as `diverged_at` or `pruned_at`), how long it took (`seconds`:
    training with its evaluations; `train_seconds`: the training steps alone; `job_seconds`: the whole
    job, set-up and pictures included), and how it read the resolved `data` config (series: no view)."""
    view = data.get("view", "series")
    last = state.history[-1] if state.history else {}
    figures = {
        "test_acc": last.get(tags.TEST_ACC),
        "test_loss": last.get(tags.TEST_LOSS),
        "val_acc": last.get(tags.VAL_ACC),
        "val_loss": last.get(tags.VAL_LOSS),
        "train_acc": last.get(tags.TRAIN_ACC),
        "train_loss": last.get(tags.TRAIN_LOSS),
        # null when there is no validation part (data.refit=true): nothing was ever best
        "best_val_acc": max(state.best_val_acc, 0.0) if state.best_epoch else None,
        "epochs_completed": state.epoch,
        "num_params": num_params,
        "seconds": round(seconds, 3),
        "train_seconds": round(state.train_seconds, 3),
        "job_seconds": round(job_seconds, 3),
        "device": device,
        "status": status,
        "diverged_at": ended_at if status == "diverged" else None,
        "pruned_at": ended_at if status == "pruned" else None,
        "stopped_early": state.stopped_early,
        "view": view,
        "permutation_seed": data.get("permutation_seed", 0) if view == "permuted" else None,
    }
    # JSON has no NaN: a figure that does not exist (no training epoch yet) is null.
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in figures.items()}


def failed_metrics(error: str) -> dict:
    """What a job that raised leaves behind: status `failed` and the one-line error."""
    return {**{key: None for key in tags.METRIC_KEYS}, "status": "failed", "error": error}


def write_metrics(metrics: dict, run_dir: Path) -> None:
    """Write metrics.json atomically: never half a file. The one place that writes it."""
    write_bytes_atomically(run_dir / METRICS_FILE, (json.dumps(metrics, indent=2) + "\n").encode())


def read_metrics(run_dir: Path) -> dict | None:
    path = run_dir / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def finished_metrics(run_dir: Path, epochs: int) -> dict | None:
    """The metrics of a run that already ended (all epochs done, diverged, or pruned), else None."""
    metrics = read_metrics(run_dir)
    if metrics is None:
        return None
    done = metrics["status"] == "ok" and (metrics["epochs_completed"] >= epochs or metrics["stopped_early"])
    return metrics if done or metrics["status"] in ("diverged", "pruned") else None


def sweep_score(metrics: dict) -> float:
    """What the task returns: the final validation accuracy; sweepers cannot rank NaN, so failures get 0."""
    value = metrics.get("val_acc")
    return value if metrics["status"] == "ok" and value is not None else 0.0
