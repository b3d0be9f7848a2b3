"""Where each job of a sweep spent its time outside its training steps, read from its run.log.

A job's wall time runs from its first log line (its config is composed and its directory made) to its
last (metrics written); its training steps are the sum of its epochs' `epoch_seconds`. The rest is the
job's fixed cost: data, model, evaluation, pictures, checkpoints, TensorBoard. Reading the logs, not
metrics.json, measures any version of seqlab the same way.

    python experiments/sweeps/fixed_cost.py SWEEP_DIR [SWEEP_DIR ...]
"""

import re
import statistics
import sys
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")
EPOCH_SECONDS = re.compile(r"epoch_seconds ([0-9.e+-]+)")


def job_times(log: Path) -> tuple[float, float]:
    """(wall seconds, training-step seconds) of one job's run.log."""
    lines = log.read_text().splitlines()
    stamps = [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f") for line in lines if (m := STAMP.match(line))]
    train = sum(float(m.group(1)) for line in lines if (m := EPOCH_SECONDS.search(line)))
    return (stamps[-1] - stamps[0]).total_seconds(), train


def summary(sweep_dir: Path) -> str:
    times = [job_times(log) for log in sorted(sweep_dir.glob("*/run.log"))]
    fixed = [wall - train for wall, train in times]
    return (
        f"{sweep_dir.name}: {len(times)} jobs; per job: wall {statistics.fmean(w for w, _ in times):.2f} s, "
        f"training steps {statistics.fmean(t for _, t in times):.2f} s, "
        f"fixed cost {statistics.fmean(fixed):.2f} s (min {min(fixed):.2f}, max {max(fixed):.2f})"
    )


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(summary(Path(argument)))
