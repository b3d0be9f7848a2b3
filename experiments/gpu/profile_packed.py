"""A packed sweep run in this process under torch.profiler: its kernel table, and how many pairs of kernels
launched by different jobs overlapped in time (experiments/gpu/overlap.py).

    python -m experiments.gpu.profile_packed OUT_DIR OVERRIDES...   # src.run's overrides, -m implied

Writes OUT_DIR/trace.json (removed once read), OUT_DIR/kernels.txt, and prints the figures as one JSON line.
"""

import json
import runpy
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from experiments.gpu import overlap

ROOT = Path(__file__).resolve().parents[2]


def run_sweep(overrides: list[str]) -> None:
    """`python -m src.run -m OVERRIDES`, run in this process as `-m` runs it (Hydra reads sys.argv)."""
    sys.argv = [str(ROOT / "src" / "run.py"), "-m", *overrides]
    try:
        runpy.run_module("src.run", run_name="__main__", alter_sys=True)
    except SystemExit as stop:  # the CLI's exit: a failed job's one line, or 0
        if stop.code not in (0, None):
            raise


def main(out: Path, overrides: list[str]) -> dict:
    cuda = torch.cuda.is_available()
    activities = [ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
    with profile(activities=activities) as profiler:
        run_sweep(overrides)
    trace = out / "trace.json"
    profiler.export_chrome_trace(str(trace))
    spans, kind = overlap.intervals(overlap.read_trace(trace))
    trace.unlink()  # tens of megabytes; the table and the figures say what the check needs
    (out / "kernels.txt").write_text(
        f"{kind} of `python -m src.run -m {' '.join(overrides)}` under torch.profiler, by total time\n\n"
        + overlap.kernel_table(spans)
        + "\n"
    )
    return overlap.summary(spans, kind)


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    print(json.dumps(main(folder, sys.argv[2:])))
