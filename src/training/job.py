"""One job: build data, model, optimizer, schedule and step from the composed config, train, write metrics.json.

Imported by src.run only when a job runs (and by src.api), so that a sweep's launching process, which
only composes configs and starts jobs, never pays for importing torch. Jobs of a packed sweep run this concurrently
in threads of one process: each on its own CUDA stream, sharing decoded data read-only.
"""

import json
import logging
import random
import signal
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

from src.config.schema import validate
from src.runs import tags
from src.runs.atomic import BackgroundWriter
from src.runs.hparams import write_hparams
from src.runs.preemption import Preempted, catch_stop_signals, preempted, stop_requested
from src.runs.results import final_metrics, finished_metrics, write_metrics
from src.training.building import build_data, build_step, build_training
from src.training.checkpoints import TrainState, checkpoint_bytes, load_latest, restore, save_checkpoint
from src.training.devices import own_stream, pick_device, threads_per_job
from src.training.loop import Diverged, Stopped, fit
from src.training.models import format_parameters
from src.training.scoring import draw_confusion, draw_predictions

log = logging.getLogger(__name__)


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
    # Finished, as the checkpoint also says: a metrics.json left by an earlier run in this directory is not.
    state_saved = checkpoint["state"] if checkpoint else {}
    done = finished_metrics(run_dir, cfg.trainer.epochs) if checkpoint else None
    if done and done["epochs_completed"] == state_saved["epoch"] and not state_saved.get("batch_in_epoch"):
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
