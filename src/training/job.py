"""One job: build data, model, optimizer, schedule and step from the composed config, train, write metrics.json.

`train_job` reads in three steps, each one screen: `prepare` (the parts, resumed where a checkpoint
says), `train` (the loop with its writers, checkpoints and stop signals; a listener to its epochs, such as
a study's trial, may end it after an epoch), `finish` (pictures and final scalars). `train_job` and
`prepare` read the config; `train` and `finish` take the parts built from it.

Imported by src.run only when a job runs (and by src.api), so that a sweep's launching process, which
only composes configs and starts jobs, never pays for importing torch. Jobs of a packed sweep run this concurrently
in threads of one process: each on its own CUDA stream, sharing decoded data read-only.
"""

import json
import logging
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

from src.config.schema import validate
from src.models.parameters import format_parameters
from src.runs import tags
from src.runs.atomic import BackgroundWriter
from src.runs.hparams import write_hparams
from src.runs.preemption import Preempted, catch_stop_signals, preempted, stop_requested
from src.runs.results import final_metrics, finished_metrics, write_metrics
from src.training.building import build_data, build_step, build_training
from src.training.checkpoints import TrainState, checkpoint_bytes, load_latest, restore, save_checkpoint
from src.training.devices import own_stream, pick_device, threads_per_job
from src.training.listening import EpochListener, Pruned
from src.training.loop import Diverged, LoopSettings, Stopped, Training, fit
from src.training.precision import make_scaler
from src.training.randomness import OwnRandomness, draws_at_random
from src.training.scoring import draw_confusion, draw_predictions

log = logging.getLogger(__name__)


@dataclass
class Parts:
    """What a job trains, built from the config (and restored from a checkpoint when resuming)."""

    training: Training
    randomness: OwnRandomness  # dropout's generators, this job's own
    table: str  # the parameter table
    num_params: int


@dataclass
class Ending:
    """How training ended: `ok`, `diverged` or `pruned`, where (None for ok), and the training's seconds."""

    status: str = "ok"
    seconds: float = 0.0
    ended_at: dict | None = None


def train_job(
    cfg: DictConfig,
    run_dir: Path,
    parallel_jobs: int | None,
    job_num: int | None,
    process_started: float,
    swept: dict[str, str] | None = None,
    trial: EpochListener | None = None,
) -> dict:
    """Build everything from the config, train (or resume), draw the pictures and write metrics.json.

    `swept`: in a sweep, the keys it varies with this job's values (src.run.swept_keys): HPARAMS leads with them.
    `trial`: a listener to the epochs (in a study, the job's line to its Optuna trial), told each epoch's
    metrics; it may stop the run (Pruned)."""
    # A single run counts its start-up from the process's start; a sweep's job from its own start.
    started, since = (process_started, "start") if job_num is None else (time.perf_counter(), "job start")
    validate(cfg)
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    found = load_latest(run_dir / "checkpoints", config) if cfg.trainer.resume else None
    if found and (done := already_done(run_dir, cfg.trainer.epochs, found[0]["state"])):
        return done
    if threads := threads_per_job(cfg.trainer.num_threads, parallel_jobs):
        torch.set_num_threads(threads)
    random.seed(cfg.seed)
    device = pick_device(cfg.trainer.device, job_num)
    with own_stream(device):
        parts = prepare(cfg, device, found)
        log.info(
            "ready to train %.2f s after %s (imports, config, data on %s, model)",
            time.perf_counter() - started,
            since,
            device,
        )
        # purge_step hides what a killed run logged after its last checkpoint, so no step appears twice.
        purge_step = parts.training.state.step + 1 if parts.training.state.step else None
        with SummaryWriter(str(run_dir), purge_step=purge_step) as writer:
            writer.add_text(tags.CONFIG_TEXT, f"```yaml\n{OmegaConf.to_yaml(cfg, resolve=True)}```")
            writer.add_text(tags.PARAMETERS_TEXT, parts.table)
            write_hparams(writer, config, swept or {})
            ending = train(parts, LoopSettings.of(cfg.trainer), writer, Saving(run_dir, config), trial)
            finish(parts, ending, writer, run_dir)
    metrics = final_metrics(
        parts.training.state,
        status=ending.status,
        num_params=parts.num_params,
        seconds=ending.seconds,
        job_seconds=time.perf_counter() - started,
        device=str(device),
        ended_at=ending.ended_at,
        data=config["data"],
    )
    write_metrics(metrics, run_dir)
    log.info("metrics: %s", json.dumps(metrics))
    return metrics


def already_done(run_dir: Path, epochs: int, saved: dict) -> dict | None:
    """The metrics of a run that its checkpoint and metrics.json both say is over, else None."""
    done = finished_metrics(run_dir, epochs)
    if done and done["epochs_completed"] == saved["epoch"] and not saved.get("batch_in_epoch"):
        log.info("%s already finished (%s); nothing to resume", run_dir, done["status"])
        return done
    return None


def prepare(cfg: DictConfig, device: torch.device, found: tuple[dict, Path] | None) -> Parts:
    """Data, model, optimizer, schedule and step on the device, restored from the checkpoint if one was found."""
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
    generator = torch.Generator().manual_seed(cfg.seed)  # the shuffle's
    randomness = OwnRandomness(cfg.seed, device)
    scaler = make_scaler(cfg.trainer.precision)
    state = TrainState()
    if found:
        checkpoint, path = found
        with randomness.active():  # the checkpoint's generator states become this job's
            state = restore(checkpoint, model, optimizer, schedule, generator, scaler, source=path)
        log.info("resumed from %s at epoch %d, step %d", path, state.epoch, state.step)
    # After restore: it may move Adam's state.
    step = build_step(cfg, model, optimizer, schedule, data, device, scaler)
    if draws_at_random(model):
        step = randomness.around(step)
    training = Training(model, data, optimizer, step, state, generator, schedule, scaler)
    return Parts(training, randomness, table, num_params)


@dataclass(frozen=True)
class Saving:
    """Where and what a job's checkpoints save."""

    run_dir: Path
    config: dict  # the resolved config, saved with every checkpoint


def train(
    parts: Parts, settings: LoopSettings, writer: SummaryWriter, saving: Saving, trial: EpochListener | None
) -> Ending:
    """Run the loop, checkpointing after every epoch; a stop signal ends it with a mid-epoch checkpoint
    and Preempted, the pruner after an epoch (its checkpoint written), a blown-up loss as `diverged`."""
    ending, started, training = Ending(), time.perf_counter(), parts.training
    if trial is not None and training.state.history:
        trial.resumed(training.state.history)
    with BackgroundWriter() as files, catch_stop_signals():  # a stop signal only sets a flag the loop reads

        def checkpoint_now(state: TrainState, is_best: bool) -> None:
            with parts.randomness.active():  # the job's own dropout stream is what the checkpoint saves
                data_bytes = checkpoint_bytes(
                    training.model,
                    training.optimizer,
                    training.schedule,
                    state,
                    training.generator,
                    saving.config,
                    training.scaler,
                )
            save_checkpoint(saving.run_dir / "checkpoints", data_bytes, files, is_best=is_best)

        def epoch_end(state: TrainState, is_best: bool, is_last: bool) -> None:
            checkpoint_now(state, is_best)
            if trial is not None:  # a finished run's last epoch is never pruned, early stopping's included
                trial.epoch_end(state.epoch, state.history[-1], last=is_last)

        try:
            fit(training, settings, writer=writer, on_epoch_end=epoch_end, should_stop=stop_requested)
        except Diverged as error:
            ending.status, ending.ended_at = "diverged", {"epoch": error.epoch, "step": error.step}
            log.error("diverged: %s; the last good checkpoint is kept", error)
        except Pruned as pruned:
            ending.status, ending.ended_at = "pruned", {"epoch": pruned.epoch, "value": pruned.value}
        except Stopped:
            checkpoint_now(training.state, False)
            files.close()  # on disk before the process goes
            raise stopped_here(training.state, training.data.num_batches("train"), saving.run_dir) from None
    ending.seconds = time.perf_counter() - started
    return ending


def finish(parts: Parts, ending: Ending, writer: SummaryWriter, run_dir: Path) -> None:
    """The pictures (not for a pruned trial: they cost more than a small model's epoch) and the final scalars."""
    model, data, state = parts.training.model, parts.training.data, parts.training.state
    if ending.status != "pruned":  # drawn once, at the end
        writer.add_image(tags.PREDICTIONS, draw_predictions(model, data, run_dir), state.step, dataformats="HWC")
        writer.add_image(tags.CONFUSION, draw_confusion(model, data, run_dir), state.step, dataformats="HWC")
    writer.add_scalar(tags.FINAL_BEST_VAL_ACC, max(state.best_val_acc, 0.0), state.step)
    writer.add_scalar(tags.FINAL_SECONDS, ending.seconds, state.step)
    writer.add_scalar(tags.FINAL_PRUNED, float(ending.status == "pruned"), state.step)


def stopped_here(state: TrainState, num_batches: int, run_dir: Path) -> Preempted:
    """The exit of a run stopped by a signal, its mid-epoch checkpoint written."""
    signum = stop_requested() or signal.SIGTERM
    return preempted(
        signum,
        f"stopped by {signal.Signals(signum).name} after step {state.step} (epoch {state.epoch + 1}, batch "
        f"{state.batch_in_epoch} of {num_batches}); {run_dir / 'checkpoints' / 'last.pt'} holds that step: "
        "trainer.resume=true continues from it",
    )
