"""Logs of a packed sweep, whose jobs are threads of one process logging through one root logger: the
console keeps the sweep's handlers, and each job's run.log gets only its own thread's records."""

import copy
import functools
import logging
import threading
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write


def console_logging(config: DictConfig) -> DictConfig | None:
    """The sweep's job_logging without its file handler, which each job opens for itself."""
    job_logging = copy.deepcopy(config).hydra.job_logging  # a copy of the whole config keeps interpolations
    if job_logging is None:
        return None
    with read_write(job_logging), open_dict(job_logging):
        job_logging.get("handlers", {}).pop("file", None)
        for logger in [job_logging.get("root"), *job_logging.get("loggers", {}).values()]:
            if logger is not None and "handlers" in logger:
                logger.handlers = [name for name in logger.handlers if name != "file"]
    return job_logging


def with_job_log(task_function: TaskFunction) -> TaskFunction:
    """task_function, writing this thread's log records to the job's own log file while it runs."""

    @functools.wraps(task_function)
    def task(cfg: DictConfig) -> Any:
        handler = open_job_log()
        if handler is None:
            return task_function(cfg)
        logging.getLogger().addHandler(handler)
        try:
            return task_function(cfg)
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()

    return task


def open_job_log() -> logging.Handler | None:
    """A FileHandler for this thread as the job's hydra.job_logging.handlers.file says; None without one."""
    job_logging = HydraConfig.get().job_logging
    spec = OmegaConf.select(job_logging, "handlers.file") if job_logging is not None else None
    if spec is None:
        return None
    handler = logging.FileHandler(spec.filename, mode=spec.get("mode", "a"), encoding=spec.get("encoding"))
    formatter = OmegaConf.select(job_logging, f"formatters.{spec.formatter}") if "formatter" in spec else None
    if formatter is not None:
        handler.setFormatter(logging.Formatter(formatter.get("format"), formatter.get("datefmt")))
    if "level" in spec:
        handler.setLevel(spec.level)
    thread = threading.get_ident()
    # Every job logs through the one root logger; the thread tells whose record it is.
    handler.addFilter(lambda record: record.thread == thread)
    return handler
