"""The study sweeper: an Optuna study run asynchronously, each trial a job that its pruner can stop.

Hydra's Launcher API is batch-shaped (`launch` blocks until all its jobs end), so the sweeper keeps
`n_jobs` slots, each launching one trial at a time: as soon as a trial ends (complete, pruned or failed)
the sweeper tells Optuna and asks for the next, without waiting for the others. With the packed
launcher the trials are threads of this process; with joblib or submitit they are other processes that
reopen the study from its storage (src/sweeps/study.py).

A rerun on the same sweep directory continues the study up to `n_trials` in all. A trial that was
running when an earlier sweep process died is taken up again under its own number, from its last
checkpoint (`trainer.resume=true`); the sweep directory's lock guarantees that process is gone.
"""

import logging
import signal
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from src.config.errors import ConfigError, one_line
from src.runs.atomic import write_bytes_atomically
from src.runs.preemption import Preempted, catch_stop_signals, preempted, request_stop, stop_requested
from src.runs.results import read_metrics
from src.runs.runlock import hold_run_dir
from src.sweeps.packing import WAKE_SECONDS, PackedLauncher
from src.sweeps.search_space import SearchSpace, search_space
from src.sweeps.study import (
    StudySettings,
    asking_lock,
    built,
    close_study,
    create_study,
    retry_callback,
    study_settings,
)
from src.sweeps.trial_report import trials_at_once

log = logging.getLogger(__name__)

SWEEP_DIR_ATTR = "sweep_dir"  # a trial's user attribute: the sweep directory whose process runs it
RESULTS_FILE = "optimization_results.yaml"  # best parameters and value, as Hydra's Optuna sweeper writes them


@dataclass(frozen=True)
class Outcome:
    """How a trial's job ended, as Optuna is told."""

    state: TrialState
    value: float | None
    note: str


class StudySweeper(Sweeper):
    """Hydra's Optuna sweeper's config, run asynchronously with a pruner."""

    def __init__(
        self,
        sampler: Any,
        pruner: Any,
        direction: str,
        storage: str | None,
        study_name: str | None,
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: DictConfig | None,
        custom_search_space: str | None,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
        max_retries: int = 0,
    ) -> None:
        for key, value, ok in (("n_trials", n_trials, n_trials >= 1), ("n_jobs", n_jobs, n_jobs >= 1)):
            if not ok:
                raise ConfigError(f"hydra.sweeper.{key}", value, "an integer >= 1")
        if not 0.0 <= max_failure_rate <= 1.0:
            raise ConfigError("hydra.sweeper.max_failure_rate", max_failure_rate, "a fraction from 0.0 to 1.0")
        # pruner, direction, storage, study_name, the heartbeat and the retries are read in `sweep` through
        # study_settings, the one function a trial's job resolves them with too (it sees hydra.sweeper, not this).
        self.sampler = built("hydra.sweeper.sampler", OmegaConf.to_container(sampler, resolve=True))
        self.n_trials, self.n_jobs = n_trials, n_jobs
        self.params = OmegaConf.to_container(params, resolve=True) if params else {}
        self.extend_space = get_method(custom_search_space) if custom_search_space else None
        self.config: DictConfig | None = None
        self.launcher: Launcher | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Keep the config and instantiate the launcher, as Hydra's sweepers do."""
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> None:
        """Run the study: up to n_trials in all, n_jobs at a time, each told as soon as it ends."""
        assert self.config is not None and self.launcher is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        settings = study_settings(self.config.hydra.sweeper, sweep_dir, Path.cwd())
        space = search_space(self.params, arguments)
        # The lock first: a second launch on a running sweep's directory is refused before it writes anything.
        with hold_run_dir(sweep_dir):
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")  # what Hydra's sweepers record (src.run reads it)
            study = create_study(settings, self.sampler)
            log.info(
                "study %s in %s: %s, sampler %s, pruner %s, %d trials, %d at a time",
                settings.name,
                settings.storage,
                settings.direction,
                type(study.sampler).__name__,
                type(study.pruner).__name__,
                self.n_trials,
                self.slots(),
            )
            try:
                StudyRun(self, study, settings, space, str(Path.cwd() / sweep_dir)).run()
            finally:
                close_study(settings)
            write_results(study, sweep_dir)

    def slots(self) -> int:
        """Trials at once (trials_at_once: the same answer each trial's job gets)."""
        assert self.config is not None
        return trials_at_once(self.config.hydra)

    def launching(self) -> tuple[AbstractContextManager, Callable[[Sequence[str], int], JobReturn]]:
        """The context the slots run in and how one slot launches one trial's job."""
        launcher = self.launcher
        if isinstance(launcher, PackedLauncher):
            return launcher.session(), launcher.launch_one
        assert launcher is not None
        return catch_stop_signals(), lambda overrides, number: launcher.launch([list(overrides)], number)[0]


class StudyRun:
    """One sweep process's part of a study: its slots, the trials in them, what it tells Optuna."""

    def __init__(
        self, sweeper: StudySweeper, study: optuna.Study, settings: StudySettings, space: SearchSpace, sweep_dir: str
    ) -> None:
        self.sweeper, self.study, self.settings, self.space = sweeper, study, settings, space
        self.sweep_dir = sweep_dir
        self.running: dict[Future, optuna.Trial | optuna.trial.FrozenTrial] = {}
        self.orphans: list[optuna.Trial | optuna.trial.FrozenTrial] = []  # died; the heartbeat will fail them
        self.stopped: Preempted | None = None
        self.slots = sweeper.slots()

    def run(self) -> None:
        """Fill the slots, tell each trial as it ends, until n_trials exist and none runs (or a stop signal)."""
        taken_up = self.interrupted_trials()
        context, launch_one = self.sweeper.launching()
        with context, ThreadPoolExecutor(self.slots, thread_name_prefix="trial") as pool:
            try:
                self.fill_and_tell(pool, taken_up, launch_one)
            except KeyboardInterrupt:  # the trials in this process stop at their next step, checkpointed
                request_stop(signal.SIGINT)
                raise
        if self.stopped or stop_requested() is not None:
            signum = self.stopped.signum if self.stopped else stop_requested()
            message = str(self.stopped) if self.stopped else "stopped by a signal"
            raise preempted(signum, f"{message}; the same command continues the study, taking up its stopped trials")

    def fill_and_tell(self, pool: ThreadPoolExecutor, taken_up: list, launch_one: Callable) -> None:
        """Keep the slots full (the trials taken up first) and tell each trial as soon as it ends; with
        heartbeats, fail the study's silent trials (whoever launched them) so that their copies run here."""
        for trial in taken_up if self.settings.heartbeats else ():  # ours to take up, not stale ones to fail
            self.study._storage.record_heartbeat(trial._trial_id)
        while True:
            if self.settings.heartbeats:
                with warnings.catch_warnings():  # experimental in Optuna 5: the documented check all the same
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(self.study)
                self.orphans = [t for t in self.orphans if self.state_of(t) == TrialState.RUNNING]
            while len(self.running) < self.slots and stop_requested() is None and not self.stopped:
                trial = taken_up.pop(0) if taken_up else self.next_trial()
                if trial is None:
                    break
                if self.settings.heartbeats:  # its first beat: a job that dies before it beats still goes stale
                    self.study._storage.record_heartbeat(trial._trial_id)
                self.running[pool.submit(launch_one, self.overrides(trial), trial.number)] = trial
            if not self.running and not self.orphans:
                return
            if not self.running:  # only dead trials the heartbeat has yet to fail: wait for it, not spin
                time.sleep(WAKE_SECONDS)
                continue
            done, _ = wait(self.running, timeout=WAKE_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                self.finish(self.running.pop(future), future)

    def state_of(self, trial: optuna.Trial | optuna.trial.FrozenTrial) -> TrialState:
        return self.study._storage.get_trial(trial._trial_id).state

    def interrupted_trials(self) -> list[optuna.trial.FrozenTrial]:
        """Trials an earlier process of this sweep left running: taken up again from their checkpoints."""
        left = [
            trial
            for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if trial.user_attrs.get(SWEEP_DIR_ATTR) == self.sweep_dir
        ]
        for trial in left:
            log.info("taking up trial %d, left running by an earlier sweep, from its checkpoint", trial.number)
        return left

    def next_trial(self) -> optuna.Trial | None:
        """The next trial: a failed one's waiting copy first, else a new one from the sampler; None once the
        study counts n_trials (whoever ran them; a failed trial that was run again counts once). Counting and
        asking hold the study's asking lock, so that sweep processes sharing a study never ask one too many."""
        with asking_lock(self.settings):
            trials = self.study.get_trials(deepcopy=False)
            retried = {number for t in trials for number in t.system_attrs.get("retry_history", [])}
            waiting = any(t.state == TrialState.WAITING for t in trials)  # a copy, which holds its original's place
            if len(trials) - len(retried) >= self.sweeper.n_trials and not waiting:
                return None
            trial = self.study.ask(fixed_distributions=self.space.distributions)
        if retried_number(self.study, trial) is not None:
            return trial  # the failed trial's parameters and attributes: it runs where that one ran
        trial.set_user_attr(SWEEP_DIR_ATTR, self.sweep_dir)
        if self.sweeper.extend_space is not None:  # Hydra's custom_search_space: (config, trial) -> None
            self.sweeper.extend_space(self.sweeper.config, trial)
        return trial

    def overrides(self, trial: optuna.Trial | optuna.trial.FrozenTrial) -> list[str]:
        """The trial's job overrides; a trial taken up again resumes from its own checkpoint, and a failed
        trial's copy from the failed one's, in its directory."""
        resume = ["trainer.resume=true"] if isinstance(trial, optuna.trial.FrozenTrial) else []
        original = retried_number(self.study, trial)
        if original is not None:
            sweep_dir = Path(self.study._storage.get_trial(trial._trial_id).user_attrs[SWEEP_DIR_ATTR])
            found = sorted(sweep_dir.glob(f"{original}_*"))
            if found:  # the failed trial's directory: its checkpoints, its TensorBoard run, its metrics
                # Quoted: a directory name holds the override grammar's `=` and `,`.
                where = [f"hydra.sweep.dir='{sweep_dir}'", f"hydra.sweep.subdir='{found[0].name}'"]
                resume = ["trainer.resume=true", *where]
            log.info("trial %d runs trial %d again%s", trial.number, original, " from its checkpoint" * bool(found))
        return self.space.overrides(trial.params) + resume

    def finish(self, trial: optuna.Trial | optuna.trial.FrozenTrial, future: Future) -> None:
        """Tell Optuna how the trial's job ended."""
        try:
            returned = future.result()
        except Preempted as stop:  # its checkpoint is written: it stays RUNNING, for the rerun to take up
            self.stopped = self.stopped or stop
            return
        except Exception as error:  # the launch itself failed (composition, a process that died, a cancelled job)
            if self.settings.heartbeats and self.settings.max_retries:
                # Its heartbeat stops with it: the study fails it (here or in any sweep process) and runs it again.
                log.info(
                    "trial %d's job ended without a result (%s): left to its heartbeat", trial.number, one_line(error)
                )
                self.orphans.append(trial)
                return
            outcome = Outcome(TrialState.FAIL, None, one_line(error))
            if self.settings.max_retries and self.state_of(trial) == TrialState.RUNNING:
                self.study.tell(trial.number, None, state=TrialState.FAIL, skip_if_finished=True)
                retry = retry_callback(self.settings)
                assert retry is not None
                retry(self.study, self.study._storage.get_trial(trial._trial_id))
                log.info("trial %d failed (%s); it will run again", trial.number, outcome.note)
                return
        else:
            try:
                outcome = outcome_of(returned, self.settings)
            except Exception as error:  # a damaged metrics.json, say: this trial fails, the study goes on
                outcome = Outcome(TrialState.FAIL, None, f"its outcome could not be read: {one_line(error)}")
        self.study.tell(trial.number, outcome.value, state=outcome.state, skip_if_finished=True)
        log.info("trial %d %s%s", trial.number, outcome.state.name.lower(), f": {outcome.note}" if outcome.note else "")


def retried_number(study: optuna.Study, trial: optuna.Trial | optuna.trial.FrozenTrial) -> int | None:
    """The number of the failed trial that `trial` runs again, or None for a trial of its own."""
    frozen = study._storage.get_trial(trial._trial_id)
    return frozen.system_attrs.get("failed_trial")  # as RetryHeartbeatStaleTrialCallback records it


def outcome_of(returned: JobReturn, settings: StudySettings) -> Outcome:
    """COMPLETE with the study's value, PRUNED, or FAIL, from the job's metrics.json (one source for the
    report, the dashboard and the study alike)."""
    hydra_cfg = getattr(returned, "hydra_cfg", None)
    if hydra_cfg is None:
        return Outcome(TrialState.FAIL, None, one_line(returned._return_value or RuntimeError("job did not run")))
    metrics = read_metrics(Path(hydra_cfg.hydra.runtime.output_dir))
    if metrics is None:
        error = returned._return_value if isinstance(returned._return_value, BaseException) else None
        return Outcome(TrialState.FAIL, None, one_line(error) if error else "no metrics.json")
    if metrics["status"] == "pruned":
        return Outcome(TrialState.PRUNED, None, f"after epoch {metrics['pruned_at']['epoch']}")
    value = metrics.get(settings.value_key)
    if metrics["status"] != "ok" or value is None:
        return Outcome(TrialState.FAIL, None, metrics.get("error") or metrics["status"])
    return Outcome(TrialState.COMPLETE, float(value), f"{settings.value_key} {value:.4f}")


class NoTrialCompleted(RuntimeError):
    """A study that ended with no finished trial: nothing to choose from (one line, with how they ended)."""


def write_results(study: optuna.Study, sweep_dir: Path) -> None:
    """optimization_results.yaml: the best trial's parameters and value, as Hydra's Optuna sweeper writes it;
    NoTrialCompleted when no trial finished (every one diverged, failed or was pruned)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        states = [trial.state.name.lower() for trial in study.get_trials(deepcopy=False)]
        counts = ", ".join(f"{states.count(state)} {state}" for state in sorted(set(states))) or "none ran"
        raise NoTrialCompleted(
            f"no trial of study {study.study_name} completed ({counts}): no best parameters; "
            f"see {sweep_dir / 'summary.md'} for each trial's reason"
        )
    best = study.best_trial
    log.info("best trial %d: %s = %.4f, %s", best.number, study.direction.name.lower(), best.value, best.params)
    results = {"name": "optuna", "best_trial": best.number, "best_params": best.params, "best_value": best.value}
    write_bytes_atomically(sweep_dir / RESULTS_FILE, OmegaConf.to_yaml(OmegaConf.create(results)).encode())
