"""Hydra launcher that runs a multirun's jobs concurrently, in threads of one process."""

import contextlib
import copy
import logging
import signal
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from hydra import version
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from src.runs.preemption import Preempted, catch_stop_signals, preempted, stop_requested
from src.sweeps.job_logs import console_logging, with_job_log

log = logging.getLogger(__name__)

GPU_JOBS_PER_DEVICE = 8
COMPOSE_LOCK = threading.Lock()  # Hydra's config loader is not known to be thread-safe
WAKE_SECONDS = 0.2  # how soon the main thread runs the handler of a stop signal (src/runs/preemption.py)


class ThreadLocalHydraConfig(HydraConfig):
    """HydraConfig whose cfg is per thread; threads that never set one see the launching thread's."""

    @classmethod
    def replacing(cls, original: HydraConfig) -> "ThreadLocalHydraConfig":
        """A stand-in for original whose cfg falls back to original's."""
        # Not cls(): the Singleton metaclass would register the stand-in as a singleton of its own.
        instance = object.__new__(cls)
        instance._local = threading.local()
        instance._fallback = original.cfg
        return instance

    @property  # type: ignore[override]
    def cfg(self) -> Any:
        return getattr(self._local, "cfg", self._fallback)

    @cfg.setter
    def cfg(self, value: Any) -> None:
        self._local.cfg = value

    def __deepcopy__(self, memo: dict) -> HydraConfig:
        # Singleton.get_state() deep-copies every singleton, and a threading.local cannot be copied.
        plain = object.__new__(HydraConfig)
        plain.cfg = copy.deepcopy(self.cfg, memo)
        return plain


class PackedLauncher(Launcher):
    """Runs the jobs of a batch in threads: jobs_per_device at a time on each GPU (or on the CPU)."""

    def __init__(self, jobs_per_device: int | None = None) -> None:
        if jobs_per_device is not None and jobs_per_device < 1:
            raise SystemExit(
                f"error: hydra.launcher.jobs_per_device={jobs_per_device!r} is not allowed: expected an integer"
                " >= 1, or null for 8 per GPU and 1 on a CPU"
            )
        self.jobs_per_device = jobs_per_device
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Keep what launch needs, as Hydra's BasicLauncher does."""
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Compose every job here, run them in a thread pool, and return their JobReturns in job order."""
        assert self.config is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        configs = [self.compose(overrides, idx) for idx, overrides in enumerate(job_overrides, start=initial_job_idx)]
        workers = self.workers(configs)
        log.info(f"Launching {len(configs)} jobs in threads, {workers} at a time")
        with self.session(), ThreadPoolExecutor(workers, thread_name_prefix="job") as pool:
            futures = [pool.submit(self.run, config) for config in configs]
            # Python runs a handler only when the main thread runs: a signal the kernel delivered to
            # another thread waits until then, so the main thread wakes up now and then.
            while wait(futures, timeout=WAKE_SECONDS).not_done:
                if stop_requested() is not None:  # a stopping process starts no further job
                    for future in futures:
                        future.cancel()
            return self.results(futures)

    def compose(self, overrides: Sequence[str], idx: int) -> DictConfig:
        """Job idx's config (its number names its directory); composition is one thread at a time."""
        assert self.config is not None and self.hydra_context is not None
        log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
        with COMPOSE_LOCK:
            config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = idx
            config.hydra.job.num = idx
        return config

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """In the main thread, around the jobs' threads: Hydra's globals, a per-thread Hydra config, the
        jobs' console logging, and the stop signals' handlers (they can only be installed here)."""
        assert self.config is not None
        setup_globals()
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        original = HydraConfig.instance()
        Singleton._instances[HydraConfig] = ThreadLocalHydraConfig.replacing(original)
        try:
            configure_log(console_logging(self.config), self.config.hydra.verbose)
            with catch_stop_signals():
                yield
        finally:
            Singleton._instances[HydraConfig] = original
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)

    def launch_one(self, overrides: Sequence[str], idx: int) -> JobReturn:
        """Compose and run job idx in this thread, inside `session` (a study's trials come one at a time)."""
        result = self.run(self.compose(overrides, idx))
        if result is None:  # a stop signal came before it started: it stays to be run again
            raise preempted(stop_requested() or signal.SIGTERM, f"job {idx} not started: the sweep is stopping")
        return result

    @staticmethod
    def results(futures: list[Future]) -> list[JobReturn]:
        """The jobs' returns in job order; a stop signal ends the launch as a run it stopped ends, handing
        the signal on once (to submitit's requeue, say) from this, the main, thread."""
        results, stopped = [], None
        for future in futures:
            if future.cancelled():
                continue
            try:
                result = future.result()
            except Preempted as error:  # a job it stopped, its checkpoint written
                stopped = stopped or error
                continue
            if result is not None:  # None: a job that never started
                results.append(result)
        if stopped is None and len(results) == len(futures):
            return results
        signum = stopped.signum if stopped else stop_requested() or signal.SIGTERM
        waiting = len(futures) - len(results) - (stopped is not None)
        message = str(stopped) if stopped else f"stopped by {signal.Signals(signum).name}"
        raise preempted(signum, f"{message}; {waiting} more jobs of the sweep did not finish (trainer.resume=true)")

    def workers(self, configs: Sequence[DictConfig]) -> int:
        """Jobs at once: jobs_per_device on each GPU (or on the CPU); 1 if a job changes the process."""
        # os.chdir and os.environ are process-wide: jobs that change them must not overlap.
        if any(changes_process(config.hydra) for config in configs):
            return 1
        gpus = gpu_count()
        per_device = self.jobs_per_device or (GPU_JOBS_PER_DEVICE if gpus else 1)
        return per_device * max(gpus, 1)

    def run(self, config: DictConfig) -> JobReturn | None:
        """Run one job in this thread; whatever fails comes back as a FAILED JobReturn. None: the process
        is stopping (a stop signal came), and a job not yet started does not start."""
        assert self.hydra_context is not None and self.task_function is not None
        if stop_requested() is not None:
            return None
        try:
            return run_job(
                hydra_context=self.hydra_context,
                task_function=with_job_log(self.task_function),
                config=config,
                job_dir_key="hydra.sweep.dir",
                job_subdir_key="hydra.sweep.subdir",
                configure_logging=False,
            )
        except Exception as error:  # run_job catches only the task's errors, not a callback's or a save's
            failed = JobReturn(overrides=list(config.hydra.overrides.task), status=JobStatus.FAILED)
            failed.return_value = error
            return failed


def gpu_count() -> int:
    """CUDA devices visible to this process; 0 without torch or CUDA."""
    try:
        import torch  # here, not at the top: Hydra imports every plugin, and a sweep need not pay for torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def changes_process(hydra_config: DictConfig) -> bool:
    """Whether run_job would chdir or set environment variables for a job of this `hydra` config."""
    chdir = hydra_config.job.chdir
    if chdir is None:
        chdir = not version.base_at_least("1.2")
    return bool(chdir) or bool(hydra_config.job.env_set)
