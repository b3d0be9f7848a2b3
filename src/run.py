"""Entry point: `python -m src.run [overrides]` trains one classifier from the composed conf/.

The entry points, src.training.job and src.training.building read the config; below them, the loop, the
step, the data and the models take objects, values and small settings objects.
Every error reaches the user as one line (src/runs/exits.py `cli`).
"""

import time

STARTED = time.perf_counter()  # before the heavy imports: start-up is measured from here

import logging  # noqa: E402 (after the clock starts)
import os
from contextlib import nullcontext
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from src.config.errors import one_line
from src.config.schema import register_schemas, validate
from src.runs.exits import cli, stop
from src.runs.results import failed_metrics, sweep_score, write_metrics
from src.runs.runlock import hold_run_dir
from src.sweeps.trial_report import in_study, trial_report, trials_at_once

log = logging.getLogger(__name__)
register_schemas()


def swept_keys(hydra_config: DictConfig) -> dict[str, str]:
    """The keys this job's sweep varies, with this job's values: those the command line gives several
    values (`a,b`, `range(...)`, as the sweep's multirun.yaml records it) and those the sweeper chooses
    (`hydra.sweeper.params`, Optuna's); all of the job's own overrides where neither is recorded. Keys
    that are not part of what a job is (those its directory name leaves out) are not counted."""
    excluded = set(hydra_config.job.config.override_dirname.exclude_keys)
    own = {
        o.key_or_group: o.get_value_element_as_str()
        for o in OverridesParser.create().parse_overrides(list(hydra_config.overrides.task))
    }
    varied = set(hydra_config.sweeper.get("params") or {})
    record = Path(hydra_config.sweep.dir) / "multirun.yaml"
    if record.is_file():  # written by Hydra's basic sweeper before it starts any job
        command_line = OmegaConf.load(record).hydra.overrides.task
        varied |= {
            o.key_or_group
            for o in OverridesParser.create().parse_overrides(list(command_line))
            if o.is_sweep_override()
        }
    keys = varied or set(own)
    return {key: value for key, value in own.items() if key in keys and key not in excluded}


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Train one classifier; return the final validation accuracy for sweepers to optimise."""
    hydra_config = HydraConfig.get()
    in_sweep = hydra_config.mode == RunMode.MULTIRUN
    if not in_sweep:
        # A bad value is one line at once, not after seconds of importing torch (train_job checks it too,
        # for the API and for a sweep's jobs, which record it as their failure).
        try:
            validate(cfg)
        except Exception as error:
            stop(error)
    # Imported here, not at the top: a sweep's launching process only composes configs and starts
    # jobs, and would otherwise spend seconds importing torch for nothing (each joblib worker, and the
    # basic launcher's first job, import it when they get here).
    from src.training.devices import release_device_memory
    from src.training.job import train_job

    run_dir = Path(hydra_config.runtime.output_dir)
    if slurm_job := os.environ.get("SLURM_JOB_ID"):  # the id squeue, sacct and scancel take; requeues count up
        array_task = "_".join(os.environ.get(key, "") for key in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"))
        restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
        log.info("slurm job %s (array task %s), restart %s", slurm_job, array_task.strip("_") or "none", restarts)
    study = in_sweep and in_study(hydra_config)
    # joblib's processes, a packed sweep's threads or a study's trials in flight share the cores.
    launcher = hydra_config.launcher
    parallel_jobs = trials_at_once(hydra_config) if study else launcher.get("n_jobs") or launcher.get("jobs_per_device")
    # One writer per directory: refused here (RunDirBusy, one line naming the holder) before anything is
    # written, not recorded as a failed job, which would overwrite the running job's metrics.json.
    try:
        with hold_run_dir(run_dir):
            try:
                trial = trial_report(hydra_config) if study else None
                # A study's trial beats until its job ends (with heartbeats on): a process that dies stops beating.
                with trial.beating() if trial is not None else nullcontext():
                    metrics = train_job(
                        cfg,
                        run_dir,
                        parallel_jobs=parallel_jobs,
                        job_num=hydra_config.job.num if in_sweep else None,
                        process_started=STARTED,
                        swept=swept_keys(hydra_config) if in_sweep else None,
                        trial=trial,
                    )
            except Exception as error:
                if not in_sweep:
                    raise
                # In a sweep a failed job is recorded and the others go on; the sweep report lists every failure.
                log.error("job failed: %s", one_line(error))
                metrics = failed_metrics(one_line(error))
                write_metrics(metrics, run_dir)
            finally:
                release_device_memory()
    except Exception as error:
        if in_sweep:
            raise
        stop(error)  # one line, without Hydra's "Error executing job with overrides" before it
    return sweep_score(metrics)


if __name__ == "__main__":
    cli(main)
