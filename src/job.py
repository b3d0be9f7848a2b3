"""One job: build data, model, optimizer, schedule and step from the composed config, train, write metrics.json.

Imported by src.run only when a job runs, so that a sweep's launching process, which only composes
configs and starts jobs, never pays for importing torch. Jobs of a packed sweep run this concurrently
in threads of one process: each on its own CUDA stream, sharing decoded data read-only.
"""

import json
import logging
import os
import random
import signal
import threading
import time
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

from src import tags
from src.atomic import BackgroundWriter
from src.checkpoints import TrainState, checkpoint_bytes, load_latest, restore, save_checkpoint
from src.data import SequenceData
from src.errors import ConfigError, naming_key
from src.hparams import write_hparams
from src.models import format_parameters
from src.precision import check_precision
from src.preemption import Preempted, catch_stop_signals, preempted, stop_requested
from src.results import final_metrics, finished_metrics, write_metrics
from src.schedules import Schedule, build_schedule
from src.schema import validate
from src.scoring import draw_confusion, draw_predictions
from src.series import SeriesData
from src.steps import Step, make_capturable, make_step, use_cuda_graph
from src.train import Diverged, Stopped, fit

log = logging.getLogger(__name__)
# Packed jobs share torch's global generator: seeding and drawing the initial weights happen in one go.
INIT_LOCK = threading.Lock()
DATA_LOCK = threading.Lock()


def pick_device(name: str, job_num: int | None = None) -> torch.device:
    """`auto` is CUDA when there is one, else CPU; asking for a CUDA device that is absent is an error.

    In a sweep, `auto` and `cuda` spread the jobs over all GPUs (job N on GPU N mod count).
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


def build_data(cfg: DictConfig, device: torch.device) -> SequenceData | SeriesData:
    """The configured dataset, placed to deliver batches on the device; decoded once per distinct data
    config and device in this process (jobs of a sweep share it read-only)."""
    data_config = OmegaConf.to_container(cfg.data, resolve=True, enum_to_str=True)
    return _placed_data(json.dumps(data_config, sort_keys=True), str(device), str(cfg.trainer.data_placement))


@lru_cache(maxsize=4)
def _placed_data_unlocked(data_json: str, device: str, placement: str) -> SequenceData | SeriesData:
    data = instantiate(json.loads(data_json)).place(torch.device(device), placement)
    if data.device.type == "cuda":  # other jobs read it from their own streams: the copies must be done
        torch.cuda.current_stream(data.device).synchronize()
    return data


def _placed_data(data_json: str, device: str, placement: str) -> SequenceData | SeriesData:
    with DATA_LOCK:
        return _placed_data_unlocked(data_json, device, placement)


def build_training(
    cfg: DictConfig, data: SequenceData | SeriesData, device: torch.device
) -> tuple[torch.nn.Module, torch.optim.Optimizer, Schedule | None]:
    """The model sized by the data (initialised from cfg.seed), its optimizer and schedule, on the device;
    seq_len is None for series of different lengths."""
    # Values that compose but that torch refuses are reported under their config key.
    sections = {name: OmegaConf.to_container(cfg[name], resolve=True) for name in ("model", "optimizer", "scheduler")}
    with INIT_LOCK, naming_key("model", sections["model"]):
        torch.manual_seed(cfg.seed)
        model = instantiate(
            cfg.model, input_size=data.input_size, num_classes=data.num_classes, seq_len=data.seq_len
        ).to(device)
    check_precision(model, data.seq_len or 1, data.input_size, device, cfg.trainer.precision)
    with naming_key("optimizer", sections["optimizer"]):
        optimizer = instantiate(cfg.optimizer)(model.parameters())
    with naming_key("scheduler", sections["scheduler"]):
        total_steps = cfg.trainer.epochs * data.num_batches("train")
        schedule = build_schedule(sections["scheduler"], optimizer, total_steps)
    return model, optimizer, schedule


def build_step(
    cfg: DictConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule | None,
    data: SequenceData | SeriesData,
    device: torch.device,
) -> Step:
    """The training step: replayed as a CUDA graph where trainer.cuda_graph allows and the run can use one."""
    variable = data.seq_len is None  # series of different lengths come as packed batches of varying shape
    graph = use_cuda_graph(cfg.trainer.cuda_graph, device, cfg.trainer.precision, optimizer, schedule, variable)
    return make_step(model, optimizer, cfg.trainer.grad_clip_norm, cfg.trainer.precision, data.batch_size, graph)


def fresh_step(
    kind: str, cfg: DictConfig, data: SequenceData | SeriesData, device: torch.device
) -> tuple[torch.nn.Module, Step]:
    """A model from the seeded start and one kind of step to train it (no schedule: benchmarks compare
    steps): `framework` the step a run takes, `eager` the plain eager step, `eager_capturable` the eager
    step with Adam's lr and step count on the GPU, as a CUDA graph keeps them."""
    model, optimizer, _ = build_training(cfg, data, device)
    if kind == "framework":
        return model, build_step(cfg, model, optimizer, None, data, device)
    if kind == "eager_capturable":
        make_capturable(optimizer, device)
    return model, make_step(
        model, optimizer, cfg.trainer.grad_clip_norm, cfg.trainer.precision, data.batch_size, cuda_graph=False
    )


def own_stream(device: torch.device) -> torch.cuda.StreamContext | nullcontext:
    """A CUDA stream of the job's own: kernels of packed jobs overlap instead of queueing on one stream."""
    return torch.cuda.stream(torch.cuda.Stream(device)) if device.type == "cuda" else nullcontext()


def train_job(
    cfg: DictConfig,
    run_dir: Path,
    parallel_jobs: int | None,
    job_num: int | None,
    process_started: float,
    swept: dict[str, str] | None = None,
) -> dict:
    """Build everything from the config, train (or resume), draw the pictures and write metrics.json.

    `swept`: in a sweep, the keys it varies with this job's values (src.run.swept_keys): HPARAMS leads with them."""
    # A single run counts its start-up from the process's start; a sweep's job from its own start.
    started, since = (process_started, "start") if job_num is None else (time.perf_counter(), "job start")
    validate(cfg)
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    found = load_latest(run_dir / "checkpoints", config) if cfg.trainer.resume else None
    checkpoint, checkpoint_path = found or (None, None)
    if checkpoint and (done := finished_metrics(run_dir, cfg.trainer.epochs)):
        log.info("%s already finished (%s); nothing to resume", run_dir, done["status"])
        return done
    if threads := threads_per_job(cfg.trainer.num_threads, parallel_jobs):
        torch.set_num_threads(threads)
    random.seed(cfg.seed)
    device = pick_device(cfg.trainer.device, job_num)
    with own_stream(device):
        data = build_data(cfg, device)
        model, optimizer, schedule = build_training(cfg, data, device)
        table, num_params = format_parameters(model)
        log.info(
            "device %s (%d threads); data %s view, %s steps of %d features; parameters:\n%s",
            device,
            torch.get_num_threads(),
            data.view,
            data.seq_len or "varying",
            data.input_size,
            table,
        )
        generator = torch.Generator().manual_seed(cfg.seed)
        state = TrainState()
        if checkpoint:
            state = restore(checkpoint, model, optimizer, schedule, generator)
            log.info("resumed from %s at epoch %d, step %d", checkpoint_path, state.epoch, state.step)
        step = build_step(cfg, model, optimizer, schedule, data, device)  # after restore: it may move Adam's state
        log.info(
            "ready to train %.2f s after %s (imports, config, data on %s, model)",
            time.perf_counter() - started,
            since,
            device,
        )
        status, diverged_at, training_started = "ok", None, time.perf_counter()
        # purge_step hides what a killed run logged after its last checkpoint, so no step appears twice.
        with (
            SummaryWriter(str(run_dir), purge_step=state.step + 1 if state.step else None) as writer,
            BackgroundWriter() as files,
            catch_stop_signals(),  # a stop signal only sets a flag, which the loop reads after each step
        ):
            writer.add_text(tags.CONFIG_TEXT, f"```yaml\n{OmegaConf.to_yaml(cfg, resolve=True)}```")
            writer.add_text(tags.PARAMETERS_TEXT, table)
            write_hparams(writer, config, swept or {})

            def checkpoint_now(state: TrainState, is_best: bool) -> None:
                data_bytes = checkpoint_bytes(model, optimizer, schedule, state, generator, config)
                save_checkpoint(run_dir / "checkpoints", data_bytes, files, is_best=is_best)

            try:
                fit(
                    model,
                    data,
                    optimizer,
                    step,
                    state,
                    epochs=cfg.trainer.epochs,
                    generator=generator,
                    log_every_n_steps=cfg.trainer.log_every_n_steps,
                    max_loss=cfg.trainer.max_loss,
                    writer=writer,
                    progress=cfg.trainer.progress,
                    schedule=schedule,
                    patience=cfg.trainer.early_stopping_patience,
                    precision=cfg.trainer.precision,
                    on_epoch_end=checkpoint_now,
                    should_stop=stop_requested,
                )
            except Diverged as error:
                status, diverged_at = "diverged", {"epoch": error.epoch, "step": error.step}
                log.error("diverged: %s; the last good checkpoint is kept", error)
            except Stopped:
                checkpoint_now(state, False)
                files.close()  # on disk before the process goes
                raise stopped_here(state, data.num_batches("train"), run_dir) from None
            seconds = time.perf_counter() - training_started
            # Drawn once, at the end: matplotlib costs more than a small model's epoch.
            writer.add_image(tags.PREDICTIONS, draw_predictions(model, data, run_dir), state.step, dataformats="HWC")
            writer.add_image(tags.CONFUSION, draw_confusion(model, data, run_dir), state.step, dataformats="HWC")
            writer.add_scalar(tags.FINAL_BEST_VAL_ACC, max(state.best_val_acc, 0.0), state.step)
            writer.add_scalar(tags.FINAL_SECONDS, seconds, state.step)
    metrics = final_metrics(
        state,
        status,
        num_params,
        seconds,
        time.perf_counter() - started,
        str(device),
        diverged_at,
        config["data"].get("view", "series"),  # series have no image view
        cfg.data.get("permutation_seed", 0),
    )
    write_metrics(metrics, run_dir)
    log.info("metrics: %s", json.dumps(metrics))
    return metrics


def stopped_here(state: TrainState, num_batches: int, run_dir: Path) -> Preempted:
    """The exit of a run stopped by a signal, its mid-epoch checkpoint written."""
    signum = stop_requested() or signal.SIGTERM
    return preempted(
        signum,
        f"stopped by {signal.Signals(signum).name} after step {state.step} (epoch {state.epoch + 1}, batch "
        f"{state.batch_in_epoch} of {num_batches}); {run_dir / 'checkpoints' / 'last.pt'} holds that step: "
        "trainer.resume=true continues from it",
    )


def release_device_memory() -> None:
    """Hand cached GPU memory back: joblib's workers live on to run the next job on the same GPU."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
