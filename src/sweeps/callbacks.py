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


class SweepReport(Callback):
    """Write the report when a multirun ends; fail the sweep if any job failed (a study: more than its
    hydra.sweeper.max_failure_rate). A multirun that ends on an error or a signal (a launcher giving up
    on a job Slurm cancelled, SIGTERM) never gets to its end: the report of its jobs is written as the
    process exits, after the one-line error."""

    def __init__(self) -> None:
        self.unreported: Path | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.unreported = Path(config.hydra.sweep.dir)
        atexit.register(self.report_what_ran)

    def report_what_ran(self) -> None:
        sweep_dir, self.unreported = self.unreported, None
        if sweep_dir is None or not job_dirs(sweep_dir):
            return
        try:
            rows = write_report(sweep_dir)
        except OSError as error:
            print(f"sweep report not written: {one_line(error)}", file=sys.stderr)
            return
        print(f"sweep report: {sweep_dir / 'summary.md'} ({len(rows)} jobs, the sweep did not end)", flush=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.unreported = None
        atexit.unregister(self.report_what_ran)
        sweep_dir = Path(config.hydra.sweep.dir)
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
