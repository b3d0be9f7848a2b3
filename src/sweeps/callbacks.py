"""Hydra callbacks named in conf/config.yaml: a launcher check before a multirun, the report after it.

Hydra turns a callback's exception into a warning and goes on, so both end the process with
SystemExit, which gets through, carrying the one-line error.
"""

import atexit
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src.config.errors import ConfigError, one_line
from src.sweeps.report import FAILED, failures_of, job_dirs, write_report


class LauncherCheck(Callback):
    """Refuse, before any job starts, a launcher setting the launcher would only trip on."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        n_jobs = config.hydra.launcher.get("n_jobs")
        if n_jobs == 0:  # joblib's own words ("n_jobs == 0 in Parallel has no meaning") name no key
            error = ConfigError(
                "hydra.launcher.n_jobs", n_jobs, "a number of parallel jobs >= 1, or -N for all cores but N-1"
            )
            sys.exit(f"error: {error}")


# The multiruns of this process that have not reached their end, with the start of each job they found
# (the mtime of its .hydra/overrides.yaml, which Hydra writes as a job starts): written at exit.
_UNFINISHED: dict[Path, dict[Path, float]] = {}


def _job_starts(sweep_dir: Path) -> dict[Path, float]:
    return {job: (job / ".hydra" / "overrides.yaml").stat().st_mtime for job in job_dirs(sweep_dir)}


def report_unfinished() -> None:
    """Write the report of each multirun of this process that never reached its end (an error, or a stop
    signal the process turned into an exit) once one of its jobs has started: the jobs cut short are
    `unfinished`. Runs as the process exits, after the one-line error, and never adds a traceback to it."""
    while _UNFINISHED:
        sweep_dir, found = _UNFINISHED.popitem()
        try:
            if _job_starts(sweep_dir).items() <= found.items():
                continue  # refused before any job of its own started: the directory's report stands
            rows = write_report(sweep_dir)
        except Exception as error:  # at exit, whatever the cause: one line on the console
            print(f"sweep report not written: {one_line(error)}", flush=True)
            continue
        print(f"sweep report: {sweep_dir / 'summary.md'} ({len(rows)} jobs; the sweep did not end)", flush=True)


atexit.register(report_unfinished)


class SweepReport(Callback):
    """Write the report when a multirun ends; fail the sweep if any job failed (a study: more than its
    hydra.sweeper.max_failure_rate). A multirun that ends early (a launcher giving up on a job Slurm
    cancelled; SIGTERM to a study, a packed or a basic sweep) is reported as its process exits."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        _UNFINISHED[sweep_dir] = _job_starts(sweep_dir)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        _UNFINISHED.pop(sweep_dir, None)
        try:
            rows = write_report(sweep_dir)
        except OSError as error:  # a full disk: one line naming the file, not Hydra's warning
            sys.exit(f"error: {one_line(error)}")
        print(f"sweep report: {sweep_dir / 'summary.md'} ({len(rows)} jobs)")
        # A study may tolerate some failed trials (hydra.sweeper.max_failure_rate); a grid sweep none.
        tolerated = float(config.hydra.sweeper.get("max_failure_rate") or 0.0)
        failed = sum(row["status"] in FAILED for row in rows)
        if failed and failed / len(rows) > tolerated:
            sys.exit(f"error: {failures_of(rows, sweep_dir)}")
