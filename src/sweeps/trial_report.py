"""A trial's job and its Optuna trial: after each epoch the job reports the study's metric, and stops
(Pruned) when the pruner says so. Imports nothing heavy until a trial is opened, so that every job may
import it."""

import logging
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from src.training.listening import Pruned

if TYPE_CHECKING:
    from src.sweeps.study import StudySettings

log = logging.getLogger(__name__)

SWEEPER = "hydra_plugins.seqlab_study_sweeper.study_sweeper.StudySweeper"  # hydra/sweeper=study


def in_study(hydra_config: DictConfig) -> bool:
    """Whether this job is a trial of a study (hydra/sweeper=study)."""
    return hydra_config.sweeper.get("_target_") == SWEEPER


def trials_at_once(hydra_config: DictConfig) -> int:
    """How many of a study's trials run at once: hydra.sweeper.n_jobs, but one under Hydra's basic launcher
    (it runs jobs in the sweeper's process, changing its global Hydra state) and one for packed jobs that
    chdir or set environment variables (process-wide). The sweeper and each trial's job both ask this."""
    from src.sweeps.packing import changes_process  # hydra only: light enough for every job

    launcher = str(hydra_config.launcher._target_)
    serial = launcher.endswith(".BasicLauncher") or (
        launcher.endswith(".PackedLauncher") and changes_process(hydra_config)
    )
    return 1 if serial else int(hydra_config.sweeper.n_jobs)


def trial_report(hydra_config: DictConfig) -> "TrialReport":
    """This job's line to its trial: the job's number is the trial's number (the sweeper launches it so)."""
    from src.sweeps.study import study_settings

    settings = study_settings(hydra_config.sweeper, hydra_config.sweep.dir, hydra_config.runtime.cwd)
    return TrialReport(settings, hydra_config.job.num)


class TrialReport:
    """A job's line to its trial: after each epoch, report the study's metric and raise Pruned if the
    pruner says stop."""

    def __init__(self, settings: "StudySettings", number: int) -> None:
        from src.sweeps.study import trial_of  # optuna: only in a study's jobs

        self.trial = trial_of(settings, number)
        self.tag = settings.report_tag
        self.number = number
        self.heartbeat_interval = settings.heartbeat_interval

    @contextmanager
    def beating(self) -> Iterator[None]:
        """While the block runs, the trial's heartbeat every heartbeat_interval seconds (storages that keep
        them): a process that dies stops beating, and the study fails the trial and may run it again."""
        storage, interval = self.trial.study._storage, self.heartbeat_interval
        if interval is None:
            yield
            return
        stop = threading.Event()

        def beat() -> None:
            while True:
                storage.record_heartbeat(self.trial._trial_id)
                if stop.wait(interval):
                    return

        beater = threading.Thread(target=beat, name=f"heartbeat-{self.number}", daemon=True)
        beater.start()
        try:
            yield
        finally:
            stop.set()
            beater.join()

    def resumed(self, history: list[dict[str, float]]) -> None:
        """A resumed run's epochs before this start: report those the trial never got."""
        from src.sweeps.study import report_missed

        report_missed(self.trial, self.tag, history)

    def epoch_end(self, epoch: int, metrics: dict[str, float], last: bool) -> None:
        """Report `epoch`'s value; raise Pruned when the trial should stop here (never after its `last`
        epoch: stopping then saves nothing and would throw a finished trial's result away)."""
        value = metrics[self.tag]
        if not math.isfinite(value):  # Optuna refuses NaN; a diverged epoch ends the run anyway
            return
        self.trial.report(value, epoch)
        if not last and self.trial.should_prune():
            log.info("trial %d pruned after epoch %d (%s %.4g)", self.number, epoch, self.tag, value)
            raise Pruned(epoch, value)
