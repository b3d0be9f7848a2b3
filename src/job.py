"""One job: build data, model, optimizer and step from the composed config, train, write metrics.json.

Imported by src.run only when a job runs, so that a sweep's launching process, which only composes
configs and starts jobs, never pays for importing torch.
"""

import json
import logging
import os
import random
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

from src import tags
from src.checkpoints import TrainState, load_compatible, restore
from src.data import SequenceData
from src.hparams import write_hparams
from src.models import format_parameters
from src.results import final_metrics, finished_metrics, write_metrics
from src.schema import ConfigError, validate
from src.scoring import check_precision
from src.steps import Step, make_step, use_cuda_graph
from src.train import Diverged, fit

log = logging.getLogger(__name__)


def pick_device(name: str, job_num: int | None = None) -> torch.device:
    """`auto` is CUDA when there is one, else CPU; asking for a CUDA device that is absent is an error.

    In a sweep, `auto` and `cuda` spread the jobs over all GPUs (job N on GPU N mod count), so
    parallel jobs each get their own device where there are several.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and job_num is not None and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        name = f"cuda:{job_num % torch.cuda.device_count()}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.device", name, "cpu or auto: this machine has no CUDA device")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError("trainer.device", name, f"cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return device


def threads_per_job(requested: int | None, parallel_jobs: int | None) -> int | None:
    """CPU threads for this job: as asked, else the cores shared among parallel jobs, else torch's default."""
    if requested:
        return requested
    if parallel_jobs:
        cores = os.cpu_count() or 1
        return max(1, cores // (cores if parallel_jobs < 0 else parallel_jobs))
    return None


def build_data(cfg: DictConfig, device: torch.device) -> SequenceData:
    """The configured dataset, placed to deliver batches on the device."""
    return instantiate(cfg.data).place(device, cfg.trainer.data_placement)


def build_training(cfg: DictConfig, data: SequenceData, device: torch.device) -> tuple:
    """The model sized by the data, its optimizer and (optional) scheduler, on the device."""
    if cfg.trainer.precision == "fp16-mixed" and device.type != "cuda":
        raise ConfigError("trainer.precision", "fp16-mixed", f"fp32 or bf16 on {device}: fp16-mixed needs a CUDA device")
    model = instantiate(cfg.model, input_size=data.input_size, num_classes=data.num_classes,
                        seq_len=data.seq_len).to(device)
    check_precision(model, data, device, cfg.trainer.precision)
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    scheduler = None
    if cfg.scheduler:  # scheduler=none composes to an empty node
        per_step = {"total_steps": max(1, cfg.trainer.epochs * data.num_batches("train"))}
        scheduler = instantiate(cfg.scheduler)(optimizer, **(per_step if "OneCycleLR" in cfg.scheduler._target_ else {}))
    return model, optimizer, scheduler


def build_step(cfg: DictConfig, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: object,
               data: SequenceData, device: torch.device) -> Step:
    """The training step: replayed as a CUDA graph where trainer.cuda_graph allows and the run can use one."""
    graph = use_cuda_graph(cfg.trainer.cuda_graph, device, cfg.trainer.precision, optimizer, scheduler)
    return make_step(model, optimizer, cfg.trainer.grad_clip_norm, cfg.trainer.precision, data.batch_size, graph)


def train_job(cfg: DictConfig, run_dir: Path, parallel_jobs: int | None, job_num: int | None,
              process_started: float) -> dict:
    """Build data, model and optimizer from the config, train (or resume), and write metrics.json."""
    # A single run counts its start-up from the process's start; a sweep's job from its own start.
    started, since = (process_started, "start") if job_num is None else (time.perf_counter(), "job start")
    validate(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    last_checkpoint = run_dir / "checkpoints" / "last.pt"
    checkpoint = load_compatible(last_checkpoint, config) if cfg.trainer.resume and last_checkpoint.is_file() else None
    if checkpoint and (done := finished_metrics(run_dir, cfg.trainer.epochs)):
        log.info("%s already finished (%s); nothing to resume", run_dir, done["status"])
        return done
    if threads := threads_per_job(cfg.trainer.num_threads, parallel_jobs):
        torch.set_num_threads(threads)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.trainer.device, job_num)
    data = build_data(cfg, device)
    model, optimizer, scheduler = build_training(cfg, data, device)
    table, num_params = format_parameters(model)
    log.info("device %s (%d threads); data %s view, %d steps of %d features; parameters:\n%s",
             device, torch.get_num_threads(), data.view, data.seq_len, data.input_size, table)
    generator = torch.Generator().manual_seed(cfg.seed)
    state = TrainState()
    if checkpoint:
        state = restore(checkpoint, model, optimizer, scheduler, generator)
        log.info("resumed from %s at epoch %d, step %d", last_checkpoint, state.epoch, state.step)
    step = build_step(cfg, model, optimizer, scheduler, data, device)  # after restore: it may move Adam's state
    log.info("ready to train %.2f s after %s (imports, config, data on %s, model)",
             time.perf_counter() - started, since, device)
    status, diverged_at, training_started = "ok", None, time.perf_counter()
    # purge_step hides what a killed run logged after its last checkpoint, so no step appears twice.
    with SummaryWriter(str(run_dir), purge_step=state.step + 1 if state.step else None) as writer:
        writer.add_text(tags.CONFIG_TEXT, f"```yaml\n{OmegaConf.to_yaml(cfg, resolve=True)}```")
        writer.add_text(tags.PARAMETERS_TEXT, table)
        write_hparams(writer, config)
        try:
            fit(model, data, optimizer, step, state, epochs=cfg.trainer.epochs, generator=generator,
                log_every_n_steps=cfg.trainer.log_every_n_steps,
                max_loss=cfg.trainer.max_loss, writer=writer, progress=cfg.trainer.progress, run_dir=run_dir,
                config=config, scheduler=scheduler, patience=cfg.trainer.early_stopping_patience,
                precision=cfg.trainer.precision)
        except Diverged as error:
            status, diverged_at = "diverged", {"epoch": error.epoch, "step": error.step}
            log.error("diverged: %s; the last good checkpoint is kept", error)
        seconds = time.perf_counter() - training_started
        metrics = final_metrics(state, status, num_params, seconds, str(device), diverged_at,
                                cfg.data.view, cfg.data.permutation_seed)
        writer.add_scalar(tags.FINAL_BEST_VAL_ACC, metrics["best_val_acc"], state.step)
        writer.add_scalar(tags.FINAL_SECONDS, seconds, state.step)
    write_metrics(metrics, run_dir)
    log.info("metrics: %s", json.dumps(metrics))
    return metrics


def release_device_memory() -> None:
    """Hand cached GPU memory back: joblib's workers live on to run the next job on the same GPU."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
