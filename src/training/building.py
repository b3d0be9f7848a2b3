"""The parts of a job, built from the composed config: data (decoded once per process), the seeded
model with its optimizer and schedule, and the training step."""

import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from src.config.errors import ConfigError, naming_key, require_argument_kinds
from src.data.batched import BatchedData
from src.training.checkpoint_reader import load_weights, read_checkpoint
from src.training.devices import pick_device
from src.training.precision import check_precision, make_scaler
from src.training.randomness import GLOBAL_GENERATORS
from src.training.schedules import Schedule, build_schedule
from src.training.steps import Step, make_capturable, make_step, use_cuda_graph

# Packed jobs share torch's global generators: seeding and drawing the initial weights happen in one go,
# under the lock that also guards each job's dropout stream being swapped in (src/training/randomness.py).
INIT_LOCK = GLOBAL_GENERATORS
DATA_LOCK = threading.Lock()


def build_data(cfg: DictConfig, device: torch.device) -> BatchedData:
    """The configured dataset, placed to deliver batches on the device; decoded once per distinct data
    config and device in this process (jobs of a sweep share it read-only)."""
    data_config = OmegaConf.to_container(cfg.data, resolve=True, enum_to_str=True)
    return _placed_data(json.dumps(data_config, sort_keys=True), str(device), str(cfg.trainer.data_placement))


@lru_cache(maxsize=4)
def _placed_data_unlocked(data_json: str, device: str, placement: str) -> BatchedData:
    data = instantiate(json.loads(data_json)).place(torch.device(device), placement)
    if data.device.type == "cuda":  # other jobs read it from their own streams: the copies must be done
        torch.cuda.current_stream(data.device).synchronize()
    return data


def _placed_data(data_json: str, device: str, placement: str) -> BatchedData:
    with DATA_LOCK:
        return _placed_data_unlocked(data_json, device, placement)


def build_model(config: DictConfig, input_size: int, num_classes: int, seq_len: int | None) -> torch.nn.Module:
    """The model `config` (cfg.model) describes, reading steps of input_size features, seq_len of them (None:
    series of different lengths), into num_classes classes; a value torch refuses names its model key."""
    with naming_key("model", OmegaConf.to_container(config, resolve=True)):
        return instantiate(config, input_size=input_size, num_classes=num_classes, seq_len=seq_len)


@dataclass
class SavedRun:
    """A run opened from one of its checkpoints: its config, its trained model (eval mode) and its data, both
    on the device, and the checkpoint as read (its state: epoch, history)."""

    config: DictConfig
    model: torch.nn.Module
    data: BatchedData
    checkpoint: dict


def open_saved_run(path: Path, device_name: str | None = None, data_root: str | None = None) -> SavedRun:
    """The one way to open a saved run (src.evaluate, src.api.load_run): the checkpoint read safely (one line
    for a damaged, foreign, crafted or unknown file), its model rebuilt with its weights on `device_name`
    (default: the run's trainer.device), its data read again, from `data_root` when the files moved."""
    device = pick_device(device_name, key="device") if device_name else None  # a bad value before any reading
    checkpoint = read_checkpoint(path)
    config = OmegaConf.create(checkpoint["config"])
    device = device or pick_device(config.trainer.device)
    if data_root:
        if "root" not in config.data:
            no_root = "null: this checkpoint's data has no root folder (it is generated, or read from data.path)"
            raise ConfigError("data_root", data_root, no_root)
        config.data.root = data_root
    data = build_data(config, device)
    model = build_model(config.model, data.input_size, data.num_classes, data.seq_len)
    load_weights(model, checkpoint["model"], path)
    return SavedRun(config, model.to(device).eval(), data, checkpoint)


def build_training(
    cfg: DictConfig, data: BatchedData, device: torch.device
) -> tuple[torch.nn.Module, torch.optim.Optimizer, Schedule | None]:
    """The model sized by the data (initialised from cfg.seed), its optimizer and schedule, on the device."""
    # Values that compose but that torch refuses are reported under their config key.
    sections = {name: OmegaConf.to_container(cfg[name], resolve=True) for name in ("optimizer", "scheduler")}
    with INIT_LOCK:
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, data.input_size, data.num_classes, data.seq_len).to(device)
    check_precision(model, data.seq_len or 1, data.input_size, device, cfg.trainer.precision)
    with naming_key("optimizer", sections["optimizer"]):
        optimizer_factory = instantiate(cfg.optimizer)
        require_argument_kinds("optimizer", sections["optimizer"], optimizer_factory.func)
        optimizer = optimizer_factory(model.parameters())
    with naming_key("scheduler", sections["scheduler"]):
        total_steps = cfg.trainer.epochs * data.num_batches("train")
        schedule = build_schedule(sections["scheduler"], optimizer, total_steps)
    return model, optimizer, schedule


def build_step(
    cfg: DictConfig,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule | None,
    data: BatchedData,
    device: torch.device,
    scaler: torch.amp.GradScaler | None = None,
) -> Step:
    """The training step: replayed as a CUDA graph where trainer.cuda_graph allows and the run can use one."""
    variable = data.seq_len is None  # series of different lengths come as packed batches of varying shape
    trainer = cfg.trainer
    graph = use_cuda_graph(trainer.cuda_graph, device, trainer.precision, optimizer, schedule, variable)
    return make_step(model, optimizer, trainer.grad_clip_norm, trainer.precision, data.batch_size, graph, scaler)


def fresh_step(kind: str, cfg: DictConfig, data: BatchedData, device: torch.device) -> tuple[torch.nn.Module, Step]:
    """A model from the seeded start and one kind of step to train it (no schedule: benchmarks compare
    steps): `framework` the step a run takes, `eager` the plain eager step, `eager_capturable` the eager
    step with Adam's lr and step count on the GPU, as a CUDA graph keeps them."""
    model, optimizer, _ = build_training(cfg, data, device)
    scaler = make_scaler(cfg.trainer.precision)
    if kind == "framework":
        return model, build_step(cfg, model, optimizer, None, data, device, scaler)
    if kind == "eager_capturable":
        make_capturable(optimizer, device)
    trainer = cfg.trainer
    return model, make_step(
        model, optimizer, trainer.grad_clip_norm, trainer.precision, data.batch_size, cuda_graph=False, scaler=scaler
    )
