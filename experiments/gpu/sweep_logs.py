"""What a finished sweep says: each job's metrics.json, and the sweep's aggregate training throughput read
from the jobs' run.log lines (the same reading as experiments/sweeps/fixed_cost.py)."""

import json
import re
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
EPOCH_LINE = re.compile(r"\] - epoch (\d+):")
TRAINED = re.compile(r"epoch_seconds ([0-9.e+-]+)\s+samples_per_second ([0-9.e+-]+)")


def job_metrics(sweep_dir: Path) -> dict[int, dict]:
    """Each job's metrics.json by job number (its directory's name starts with it); {} for a job without one."""
    jobs = {}
    for folder in sweep_dir.iterdir():
        if folder.is_dir() and folder.name.split("_")[0].isdigit():
            path = folder / "metrics.json"
            jobs[int(folder.name.split("_")[0])] = json.loads(path.read_text()) if path.is_file() else {}
    return dict(sorted(jobs.items()))


def statuses(jobs: dict[int, dict]) -> str:
    """'14 ok, 2 pruned' (jobs without metrics.json count as 'no metrics')."""
    counts: dict[str, int] = {}
    for metrics in jobs.values():
        status = metrics.get("status", "no metrics")
        counts[status] = counts.get(status, 0) + 1
    return ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))


def _stamp(line: str) -> datetime:
    return datetime.strptime(STAMP.match(line).group(1), "%Y-%m-%d %H:%M:%S,%f")


def throughput(sweep_dir: Path) -> tuple[float, float]:
    """(training samples of all jobs, seconds from the first job's first step to the last job's last epoch
    line): the samples come from each epoch line's epoch_seconds x samples_per_second."""
    samples, starts, ends = 0.0, [], []
    for log in sweep_dir.glob("*/run.log"):
        epoch_lines = [line for line in log.read_text().splitlines() if EPOCH_LINE.search(line) and STAMP.match(line)]
        if not epoch_lines:
            continue
        starts.append(_stamp(epoch_lines[0]))  # "epoch 0:" is logged just before the first step
        ends.append(_stamp(epoch_lines[-1]))
        for line in epoch_lines:
            if found := TRAINED.search(line):
                samples += float(found.group(1)) * float(found.group(2))
    if not starts:
        raise ValueError(f"{sweep_dir}: no job logged an epoch")
    return samples, (max(ends) - min(starts)).total_seconds()
