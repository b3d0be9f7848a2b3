"""Entry point: `python -m src.run [overrides]` trains one classifier from the composed conf/.

The entry points and src.job read the config; everything below them takes plain objects and values.
Every error reaches the user as one line (src/errors.py `cli`).
"""

import time

STARTED = time.perf_counter()  # before the heavy imports: start-up is measured from here

import logging  # noqa: E402 (after the clock starts)
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from src.errors import cli, one_line
from src.results import failed_metrics, sweep_score, write_metrics
from src.runlock import hold_run_dir
from src.schema import register_schemas

log = logging.getLogger(__name__)
register_schemas()


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Train one classifier; return the final validation accuracy for sweepers to optimise."""
    # Imported here, not at the top: a sweep's launching process only composes configs and starts
    # jobs, and would otherwise spend seconds importing torch for nothing (each joblib worker, and the
    # basic launcher's first job, import it when they get here).
    from src.job import release_device_memory, train_job

    hydra_config = HydraConfig.get()
    run_dir = Path(hydra_config.runtime.output_dir)
    in_sweep = hydra_config.mode == RunMode.MULTIRUN
    # joblib's processes or a packed sweep's threads share the cores.
    parallel_jobs = hydra_config.launcher.get("n_jobs") or hydra_config.launcher.get("jobs_per_device")
    # One writer per directory: refused here (RunDirBusy, one line naming the holder) before anything is
    # written, not recorded as a failed job, which would overwrite the running job's metrics.json.
    with hold_run_dir(run_dir):
        try:
            metrics = train_job(
                cfg,
                run_dir,
                parallel_jobs=parallel_jobs,
                job_num=hydra_config.job.num if in_sweep else None,
                process_started=STARTED,
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
    return sweep_score(metrics)


if __name__ == "__main__":
    cli(main)
