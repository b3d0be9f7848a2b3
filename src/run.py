"""Entry point: `python -m src.run [overrides]` trains one classifier from the composed conf/.

The entry points and src.job read the config; everything below them takes plain objects and values.
Every error reaches the user as one line (`cli`).
"""

import time

STARTED = time.perf_counter()  # before the heavy imports: start-up is measured from here

import logging  # noqa: E402 (after the clock starts)
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from src.results import failed_metrics, sweep_score, write_metrics
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
    try:
        metrics = train_job(cfg, run_dir, parallel_jobs=hydra_config.launcher.get("n_jobs"),
                            job_num=hydra_config.job.num if in_sweep else None, process_started=STARTED)
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


def one_line(error: BaseException) -> str:
    """Reduce an exception (Hydra's multi-line reports and their causes) to one readable line."""
    if isinstance(error, OSError) and error.filename:
        return f"cannot write {error.filename}: {error.strerror} (check hydra.run.dir / hydra.sweep.dir and free space)"
    parts = [error, error.__cause__] if error.__cause__ is not None else [error]
    if type(error).__name__ == "InstantiationException":  # its own text is only "Error in call to ..."
        parts = parts[1:] or parts
    kept = []
    for line in "\n".join(map(str, parts)).splitlines():
        line = line.strip()
        if line.startswith("Config search path"):
            break
        if line and not line.startswith(("full_key:", "object_type=", "reference_type=")):
            kept.append(line)
    return " ".join(kept) or type(error).__name__


def cli(app: Callable[[], Any]) -> None:
    """Run a Hydra app; any error becomes one line and exit 1 (HYDRA_FULL_ERROR=1 shows the traceback)."""
    wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let Hydra's errors reach us instead of its multi-line report
    try:
        app()
    except KeyboardInterrupt:
        print("error: interrupted; what was checkpointed is kept (trainer.resume=true continues it)", file=sys.stderr)
        sys.exit(130)  # the shell's convention for SIGINT
    except Exception as error:
        if wants_traceback:
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    cli(main)
