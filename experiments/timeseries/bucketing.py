"""Seconds per training epoch (from each job's metrics.json) and the share of padded steps per epoch, bucketed
against plain batches; printed as a Markdown table.

    python experiments/timeseries/bucketing.py outputs/multirun/timeseries_bucketing
"""

import json
import statistics
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from src.data.uea import load_uea


def padded_share(name: str, patch: int, bucket: bool) -> float:
    """Padded steps over all steps the layers are handed in one training epoch (batches of 16)."""
    settings = dict(batch_size=16, eval_batch_size=512, val_size=0.2, normalize="channel", patch=patch, stride=1)
    data = load_uea(name, None, bucket=bucket, split_seed=0, **settings)
    batches = data.batches("train", shuffle=True, generator=torch.Generator().manual_seed(0))
    padded = total = 0
    for x, _ in batches:
        total += x.values.shape[0] * x.values.shape[1]
        padded += x.values.shape[0] * x.values.shape[1] - int(x.lengths.sum())
    return padded / total


def main(sweep_dir: Path) -> None:
    seconds: dict[tuple[str, str, str], list[float]] = {}
    for job in sorted(sweep_dir.glob("*/metrics.json")):
        overrides = dict(o.split("=", 1) for o in OmegaConf.load(job.parent / ".hydra" / "overrides.yaml"))
        metrics = json.loads(job.read_text())
        key = (overrides["data.name"], overrides["data.patch"], overrides["data.bucket"])
        seconds.setdefault(key, []).append(metrics["train_seconds"] / metrics["epochs_completed"])
    print("| problem | batches | s/epoch (mean ± std over seeds) | padded steps |")
    print("| --- | --- | ---: | ---: |")
    for (name, patch, bucket), values in sorted(seconds.items()):
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        share = padded_share(name, int(patch), bucket.lower() == "true")
        label = "bucketed" if bucket.lower() == "true" else "plain"
        print(f"| {name}, patch {patch} | {label} | {statistics.fmean(values):.3f} ± {spread:.3f} | {share:.1%} |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
