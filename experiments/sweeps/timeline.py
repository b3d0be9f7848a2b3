"""Where a sweep's wall time went, from its logs: launching, each job, and the tail after the last job.

    python experiments/sweeps/timeline.py SWEEP_DIR MAIN_LOG START END

START and END are the command's start and end (`date +%s.%N`), MAIN_LOG what the command printed.
A job's start is its "ready to train N s after job start" line minus N; its end is its "metrics:" line.
"""

import re
import sys
import time
from pathlib import Path

STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]")


def stamp(line: str) -> float | None:
    match = STAMP.match(line)
    if not match:
        return None
    return time.mktime(time.strptime(match[1], "%Y-%m-%d %H:%M:%S")) + int(match[2]) / 1000


def first_stamp(lines: list[str], needle: str) -> float | None:
    return next((stamp(line) for line in lines if needle in line and stamp(line) is not None), None)


def job_span(run_log: Path) -> tuple[float, float, float] | None:
    """(start, ready to train, end) of one job, or None when its log lacks them."""
    lines = run_log.read_text().splitlines()
    ready = next((line for line in lines if "ready to train" in line), None)
    end = first_stamp(lines, "metrics:")
    if ready is None or end is None:
        return None
    setup = float(re.search(r"ready to train ([\d.]+) s", ready)[1])
    return stamp(ready) - setup, stamp(ready), end


def main(sweep_dir: Path, main_log: Path, start: float, end: float) -> None:
    # "Launching 4 jobs locally" (basic launcher), "... is launching 16 jobs" (joblib)
    launched = first_stamp(main_log.read_text().splitlines(), "aunching")
    spans = sorted(span for log in sweep_dir.glob("*/run.log") if (span := job_span(log)))
    if launched is None or not spans:
        sys.exit(f"no launch line in {main_log} or no finished job under {sweep_dir}")
    print(f"command start -> launch: {launched - start:.1f} s")
    print(f"launch -> first job starts: {spans[0][0] - launched:.1f} s")
    print(
        f"job set-up (start -> ready to train), first / median / last: "
        f"{spans[0][1] - spans[0][0]:.2f} / {sorted(s[1] - s[0] for s in spans)[len(spans) // 2]:.2f} / "
        f"{spans[-1][1] - spans[-1][0]:.2f} s"
    )
    print(f"job wall (start -> metrics), median: {sorted(s[2] - s[0] for s in spans)[len(spans) // 2]:.2f} s")
    last = max(s[2] for s in spans)
    print(f"first job start -> last job end: {last - spans[0][0]:.1f} s ({len(spans)} jobs)")
    print(f"last job end -> command end (report, shutdown): {end - last:.1f} s")
    print(f"total: {end - start:.1f} s")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
