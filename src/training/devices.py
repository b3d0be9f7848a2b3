"""Where a job runs: its device, its CPU threads, its own CUDA stream, and handing GPU memory back."""

import os
from contextlib import nullcontext

import torch

from src.config.errors import ConfigError


def pick_device(name: str, job_num: int | None = None, key: str = "trainer.device") -> torch.device:
    """`auto` is CUDA when there is one, else CPU; asking for a CUDA device that is absent is an error
    naming `key` (the option that chose the device).

    In a sweep, `auto` and `cuda` spread the jobs over all GPUs (job N on GPU N mod count).
    """
    name = str(name)  # `device=3` composes as a number, which torch would read as cuda:3
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and job_num is not None and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        name = f"cuda:{job_num % torch.cuda.device_count()}"
    if name not in ("cpu", "cuda") and not (name.startswith("cuda:") and name[5:].isdigit()):
        raise ConfigError(key, name, "auto | cpu | cuda | cuda:N")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(key, name, "cpu or auto: this machine has no CUDA device")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(key, name, f"cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return device


def threads_per_job(requested: int | None, parallel_jobs: int | None) -> int | None:
    """CPU threads for this job: as asked, else the cores shared among parallel jobs, else torch's default."""
    if requested:
        return requested
    if parallel_jobs:
        cores = os.cpu_count() or 1
        return max(1, cores // (cores if parallel_jobs < 0 else parallel_jobs))
    return None


def own_stream(device: torch.device) -> torch.cuda.StreamContext | nullcontext:
    """A CUDA stream of the job's own: kernels of packed jobs overlap instead of queueing on one stream."""
    return torch.cuda.stream(torch.cuda.Stream(device)) if device.type == "cuda" else nullcontext()


def release_device_memory() -> None:
    """Hand cached GPU memory back: joblib's workers live on to run the next job on the same GPU."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
