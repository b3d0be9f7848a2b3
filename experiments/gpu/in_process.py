"""The GPU check's steps that train through src.api in one process: Fashion-MNIST from the data root, a
stopped run resumed against an uninterrupted one, bucketed variable-length series, bf16, and Run.predict /
load_run on the device.

    python -m experiments.gpu.in_process DEVICE SIZE WORK_DIR DATA_ROOT

Prints one JSON line per step ({"name", "status", "detail", "figures"}) as each ends; each has its own time limit.
"""

import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from experiments.gpu import plan
from src.api import compose_run, load_run, train
from src.config.errors import one_line
from src.training.building import build_data
from src.training.checkpoints import read_checkpoint
from src.training.devices import pick_device

SAME = ("test_acc", "test_loss", "val_acc", "best_val_acc", "train_acc", "train_loss")  # exact on resume
STEP_LIMIT_S = 120


class StepTimeout(Exception):
    pass


def fashion(device: str, size: plan.Size, work: Path) -> tuple[str, dict]:
    """The data root's Fashion-MNIST files found, decoded and placed on the device (cached for later runs)."""
    cfg, _ = compose_run(*size.fashion, *plan.on(device))
    data = build_data(cfg, pick_device(device))
    if data.device.type != torch.device(device).type:
        raise AssertionError(f"the images were placed on {data.device}, not {device}")
    counts = {split: len(getattr(data, f"{split}_y")) for split in ("train", "val", "test")}
    return f"{counts['train']} training, {counts['val']} validation, {counts['test']} test images on {device}", counts


def resume(device: str, size: plan.Size, work: Path) -> tuple[str, dict]:
    """The run stopped by SIGTERM (the check's previous step) resumed, against the same run uninterrupted."""
    stopped, overrides = work / "stopped", (*size.stop, *plan.on(device), plan.graph_step(device))
    if not (stopped / "checkpoints" / "last.pt").is_file():
        raise FileNotFoundError(f"{stopped}: no checkpoint of the stopped run to resume")
    state = read_checkpoint(stopped / "checkpoints" / "last.pt")["state"]
    if not state["batch_in_epoch"]:
        raise ValueError(f"the stopped run's checkpoint is at an epoch's end (step {state['step']}), not mid-epoch")
    expected = train(*overrides, run_dir=work / "whole").metrics
    got = train(*overrides, "trainer.resume=true", run_dir=stopped).metrics
    differ = {key: (got[key], expected[key]) for key in SAME if got[key] != expected[key]}
    figures = {"stopped_at_step": state["step"], "batch_in_epoch": state["batch_in_epoch"], "differ": differ}
    if differ:
        again = train(*overrides, run_dir=work / "whole_again").metrics
        noise = {key: again[key] - expected[key] for key in SAME if again[key] != expected[key]}
        figures["two_uninterrupted_runs_differ"] = noise
        raise AssertionError(
            f"resumed != uninterrupted: {differ}; two uninterrupted runs " + (f"differ: {noise}" if noise else "agree")
        )
    where = f"step {state['step']} (batch {state['batch_in_epoch']} of its epoch)"
    return f"stopped at {where}, resumed: {len(SAME)} figures equal to the uninterrupted run's", figures


def write_series(path: Path, series: plan.Series) -> None:
    """4 classes: a noisy level and a sine whose frequency the class sets, of lengths between the shortest
    and the longest, zero past each end (an easy task: a working run learns it within a few epochs)."""
    rng = np.random.default_rng(0)
    parts = {}
    for split, count in (("", series.train), ("_test", series.test)):
        lengths = rng.integers(series.shortest, series.longest + 1, count)
        labels = rng.integers(0, 4, count)
        steps = np.arange(series.longest)[None, :]  # (1, T)
        wave = np.sin(2 * np.pi * (labels[:, None] + 1) * steps / series.longest + rng.uniform(0, 6.3, (count, 1)))
        level = labels[:, None] + rng.normal(0, 0.3, wave.shape)  # (N, T)
        x = np.stack([wave, level, rng.normal(0, 1, wave.shape)], axis=-1)  # (N, T, 3)
        x[steps.repeat(count, 0) >= lengths[:, None]] = 0.0  # zeros past each length
        parts |= {f"x{split}": x.astype(np.float32), f"lengths{split}": lengths, f"y{split}": labels}
    np.savez(path, **parts)


def bucketed(device: str, size: plan.Size, work: Path) -> tuple[str, dict]:
    """data=arrays with lengths: packed variable-length batches through cuDNN, bucketed by length."""
    path = work / "series.npz"
    write_series(path, size.series)
    run = train(
        "data=arrays", f"data.path={path}", "data.bucket=true", "data.batch_size=16", "optimizer.lr=0.01",
        "model=gru", "model.num_layers=1",
        f"model.hidden_size={size.series.hidden_size}", "model.bidirectional=true", "model.head=mean",
        f"trainer.epochs={size.series.epochs}", *plan.on(device), run_dir=work / "series",
    )  # fmt: skip
    where, acc = str(run.data.device), run.metrics["test_acc"]
    if not (run.data.variable_lengths and run.data.bucket and where.startswith(device)):
        raise AssertionError(f"not bucketed variable-length batches on {device}: {where}, bucket={run.data.bucket}")
    if acc < 0.5:  # four classes: chance is 0.25
        raise AssertionError(f"test accuracy {acc:.4f} after {size.series.epochs} epochs (chance 0.25)")
    return f"test acc {acc:.4f}, {run.metrics['train_seconds']:.1f} s training", {"test_acc": acc}


def bf16(device: str, size: plan.Size, work: Path) -> tuple[str, dict]:
    """trainer.precision=bf16 (with the CUDA-graph step on a GPU)."""
    metrics = train(*size.bf16, *plan.on(device), run_dir=work / "bf16").metrics
    if metrics["status"] != "ok":
        raise AssertionError(f"status {metrics['status']}")
    text = f"test acc {metrics['test_acc']:.4f}, {metrics['train_seconds']:.1f} s training"
    return text, {"test_acc": metrics["test_acc"]}


def api(device: str, size: plan.Size, work: Path) -> tuple[str, dict]:
    """Run.predict on the device equals the run's own test accuracy; load_run gives the same predictions."""
    run_dir = work / "api"
    run = train(*size.api, *plan.on(device), run_dir=run_dir)
    if next(run.model.parameters()).device.type != torch.device(device).type:
        raise AssertionError(f"the trained Run's model is on {next(run.model.parameters()).device}, not {device}")
    predicted = run.predict(run.data.test_x)
    acc = (predicted == run.data.test_y.cpu()).float().mean().item()
    loaded = load_run(run_dir, device=device).predict(run.data.test_x)
    on_cpu = load_run(run_dir, device="cpu").predict(run.data.test_x.cpu())
    figures = {
        "predict_acc": acc,
        "test_acc": run.metrics["test_acc"],
        "load_run_same": float((loaded == predicted).float().mean()),
        "cpu_agrees": float((on_cpu == predicted).float().mean()),
    }
    if abs(acc - run.metrics["test_acc"]) > 0.002 or figures["load_run_same"] < 1 or figures["cpu_agrees"] < 0.99:
        raise AssertionError(f"predictions disagree: {figures}")
    return f"predict acc {acc:.4f} = test acc; load_run same; CPU agrees on {figures['cpu_agrees']:.4f}", figures


STEPS: tuple[Callable[[str, plan.Size, Path], tuple[str, dict]], ...] = (fashion, resume, bucketed, bf16, api)


def timed_out(signum: int, frame: object) -> None:
    raise StepTimeout(f"over {STEP_LIMIT_S} s")


def main(device: str, size_name: str, work: Path, data_root: str) -> None:
    size = plan.size(size_name, data_root)
    signal.signal(signal.SIGALRM, timed_out)
    for name, step in zip(plan.IN_PROCESS, STEPS, strict=True):
        started = time.perf_counter()
        signal.alarm(STEP_LIMIT_S)
        try:
            detail, figures = step(device, size, work)
            status = "ok"
        except Exception as error:  # a failed step is a line of the report; the next step still runs
            status, detail, figures = "FAILED", f"FAILED: {type(error).__name__}: {one_line(error)[:300]}", {}
        finally:
            signal.alarm(0)
        line = {"name": name, "status": status, "detail": detail, "figures": figures}
        print(json.dumps(line | {"seconds": round(time.perf_counter() - started, 1)}, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4])
