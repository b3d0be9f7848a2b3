"""Typed schemas for the config groups, and the range checks a type cannot express.

The YAML files in conf/ extend these schemas (their defaults list names them), so a misspelled key
or a value of the wrong type is refused by Hydra at composition, before any work starts.
"""

import sys
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

CELLS = ("rnn", "gru", "lstm")
HEADS = ("last", "flatten", "mean", "max")
INITS = ("orthogonal", "torch")
VIEWS = ("rows", "columns", "pixels", "permuted")
DATASETS = ("mnist", "fashion_mnist", "kmnist")
DEVICE_WORDS = ("auto", "cpu", "cuda", "cuda:N")
PRECISIONS = ("fp32", "bf16", "fp16-mixed")
PLACEMENTS = ("auto", "device", "host")


class ConfigError(ValueError):
    """A config value that is not allowed: names the key, the value and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        super().__init__(f"{key}={value!r} is not allowed: expected {allowed}")
        self.key = key


class LauncherCheck(Callback):
    """Hydra callback: refuse, before any job starts, a launcher setting the launcher would only trip on."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        n_jobs = config.hydra.launcher.get("n_jobs")
        if n_jobs == 0:  # joblib's own words ("n_jobs == 0 in Parallel has no meaning") name no key
            error = ConfigError("hydra.launcher.n_jobs", n_jobs, "a number of parallel jobs >= 1, or -N for all cores but N-1")
            # Hydra turns a callback's exception into a warning and goes on; SystemExit gets through.
            sys.exit(f"error: {error}")


@dataclass
class RecurrentSchema:
    _target_: str = "src.models.RecurrentClassifier"
    cell: str = "lstm"
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.0
    bidirectional: bool = False
    head: str = "last"
    init: str = "orthogonal"


@dataclass
class BatchingSchema:
    batch_size: int = 256
    eval_batch_size: int = 1024
    val_size: int = 5000
    view: str = "rows"
    permutation_seed: int = 0
    normalize: bool = True  # mean/std of the training split; false gives ToTensor's [0, 1]


@dataclass
class ImageSchema(BatchingSchema):
    _target_: str = "src.data.load_images"
    dataset: str = "mnist"
    root: str = "data"
    download: bool = True
    split_seed: int = 0


@dataclass
class SyntheticSchema(BatchingSchema):
    _target_: str = "src.data.make_synthetic"
    num_train: int = 2000
    num_test: int = 500
    seq_len: int = 12
    input_size: int = 10
    num_classes: int = 4
    noise: float = 0.25
    seed: int = 0
    val_size: int = 200
    batch_size: int = 64


@dataclass
class TrainerSchema:
    epochs: int = 5
    device: str = "auto"
    grad_clip_norm: float | None = 1.0  # recurrent cells can have exploding gradients; null turns it off
    log_every_n_steps: int = 50
    progress: bool = True
    resume: bool = False
    data_placement: str = "auto"  # device (held there) | host (streamed per batch) | auto (device if it fits)
    # auto: the step is captured in a CUDA graph and replayed wherever the run allows (src/steps.py)
    cuda_graph: Any = "auto"  # auto | true | false (Any: a str or a bool)
    precision: str = "fp32"  # fp32 | bf16 (autocast) | fp16-mixed (autocast + GradScaler, CUDA only)
    early_stopping_patience: int | None = None  # stop after this many epochs without a better val/acc
    num_threads: int | None = None  # null: torch's default, or the cores shared among joblib's parallel jobs
    # Cross-entropy above this means the run has blown up (chance on 10 classes is 2.3); null: no ceiling.
    max_loss: float | None = 1000.0


def register_schemas() -> None:
    """Store the schemas under the names the YAML defaults lists refer to."""
    store = ConfigStore.instance()
    # Kept out of the model/data/trainer groups so they are not offered as options of those groups.
    store.store(group="schema", name="model", node=RecurrentSchema)
    store.store(group="schema", name="image_data", node=ImageSchema)
    store.store(group="schema", name="synthetic_data", node=SyntheticSchema)
    store.store(group="schema", name="trainer", node=TrainerSchema)


def _require(ok: bool, key: str, value: object, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, value, allowed)


def _check_device(value: str) -> None:
    is_cuda_index = value.startswith("cuda:") and value[5:].isdigit()
    _require(value in DEVICE_WORDS[:3] or is_cuda_index, "trainer.device", value, " | ".join(DEVICE_WORDS))


def validate(cfg: DictConfig) -> None:
    """Check the ranges and choices of a composed config; raise ConfigError on the first bad value."""
    model, data, trainer = cfg.model, cfg.data, cfg.trainer
    _require(model.cell in CELLS, "model.cell", model.cell, " | ".join(CELLS))
    _require(model.head in HEADS, "model.head", model.head, " | ".join(HEADS))
    _require(model.init in INITS, "model.init", model.init, " | ".join(INITS))
    _require(model.hidden_size > 0, "model.hidden_size", model.hidden_size, "an integer > 0")
    _require(model.num_layers > 0, "model.num_layers", model.num_layers, "an integer > 0")
    _require(0 <= model.dropout < 1, "model.dropout", model.dropout, "a number in [0, 1)")
    _require(data.view in VIEWS, "data.view", data.view, " | ".join(VIEWS))
    _require(data.batch_size > 0, "data.batch_size", data.batch_size, "an integer > 0")
    _require(data.eval_batch_size > 0, "data.eval_batch_size", data.eval_batch_size, "an integer > 0")
    _require(data.val_size > 0, "data.val_size", data.val_size, "an integer > 0 (model selection needs a validation set)")
    if "dataset" in data:
        _require(data.dataset in DATASETS, "data.dataset", data.dataset, " | ".join(DATASETS))
    lr = cfg.optimizer.get("lr")
    _require(isinstance(lr, (int, float)) and lr > 0, "optimizer.lr", lr, "a number > 0")
    _require(trainer.epochs >= 0, "trainer.epochs", trainer.epochs, "an integer >= 0")
    _require(trainer.log_every_n_steps > 0, "trainer.log_every_n_steps", trainer.log_every_n_steps, "an integer > 0")
    clip = trainer.grad_clip_norm
    _require(clip is None or clip > 0, "trainer.grad_clip_norm", clip, "null or a number > 0")
    patience = trainer.early_stopping_patience
    _require(patience is None or patience > 0, "trainer.early_stopping_patience", patience, "null or an integer > 0")
    threads = trainer.num_threads
    _require(threads is None or threads > 0, "trainer.num_threads", threads, "null or an integer > 0")
    max_loss = trainer.max_loss
    _require(max_loss is None or max_loss > 0, "trainer.max_loss", max_loss, "null or a number > 0")
    _check_device(trainer.device)
    _require(trainer.data_placement in PLACEMENTS, "trainer.data_placement", trainer.data_placement, " | ".join(PLACEMENTS))
    _require(trainer.cuda_graph in ("auto", True, False), "trainer.cuda_graph", trainer.cuda_graph, "auto | true | false")
    _require(trainer.precision in PRECISIONS, "trainer.precision", trainer.precision, " | ".join(PRECISIONS))
