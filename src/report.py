"""`python -m src.report <sweep dir>`: write (again) a sweep's summary.csv, summary.md and summary.png."""

import argparse
import sys
from pathlib import Path

from src.sweeps.report import failures_of, job_dirs, write_report


def main() -> None:
    parser = argparse.ArgumentParser(description="Write summary.csv, summary.md and summary.png for a sweep.")
    parser.add_argument("sweep_dir", type=Path)
    sweep_dir = parser.parse_args().sweep_dir
    if not job_dirs(sweep_dir):
        sys.exit(
            f"error: {sweep_dir} holds no job directories (*/.hydra/overrides.yaml): is it a multirun's directory?"
        )
    rows = write_report(sweep_dir)
    print((sweep_dir / "summary.md").read_text())
    if message := failures_of(rows, sweep_dir):
        sys.exit(f"error: {message}")


if __name__ == "__main__":
    main()
