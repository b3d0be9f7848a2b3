"""Typed schemas for the root config and its groups, and the range checks a type cannot express.

The YAML files in conf/ extend these schemas (their defaults lists name them), so a misspelled key, a
value of the wrong type or a choice outside its Enum is refused by Hydra at composition, before any
work starts; `validate` then checks ranges.
"""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from src.config.choices import (
    Cell,
    Dataset,
    GraphMode,
    Head,
    Init,
    Interval,
    Normalization,
    Placement,
    Precision,
    View,
    names,
)
from src.config.errors import require

DEVICE_WORDS = ("auto", "cpu", "cuda", "cuda:N")


@dataclass
class RecurrentSchema:
    _target_: str = "src.models.recurrent.RecurrentClassifier"
    cell: Cell = Cell.lstm
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.0
    bidirectional: bool = False
    head: Head = Head.last
    init: Init = Init.orthogonal


@dataclass
class RecurrentFCNSchema(RecurrentSchema):
    """The recurrent stack with a fully convolutional branch beside it (src/models/fcn.py), as published:
    one layer of 8 cells, dropout 0.8 on its features, blocks of 128, 256, 128 filters of widths 8, 5, 3."""

    _target_: str = "src.models.fcn.RecurrentFCN"
    hidden_size: int = 8
    num_layers: int = 1
    filters: list[int] = field(default_factory=lambda: [128, 256, 128])
    kernels: list[int] = field(default_factory=lambda: [8, 5, 3])
    squeeze_excite: bool = False  # in the first two blocks (MLSTM-FCN, for multivariate series)
    shuffle: bool = False  # the recurrent stack reads one step per channel (series of one length)
    head_dropout: float = 0.8  # on the recurrent features, before the classifier


# What a config may build, by group: the schemas' targets are also what a checkpoint may name.
MODEL_SCHEMAS = {"model": RecurrentSchema, "fcn_model": RecurrentFCNSchema}


@dataclass
class BatchingSchema:
    """How images are batched and read: the keys every image source shares (src/data/images.py)."""

    batch_size: int = 256
    eval_batch_size: int = 1024
    val_size: int = 5000
    view: View = View.rows
    permutation_seed: int = 0
    normalize: bool = True  # mean/std of the training split; false gives ToTensor's [0, 1]


@dataclass
class ImageSchema(BatchingSchema):
    _target_: str = "src.data.images.load_images"
    dataset: Dataset = Dataset.mnist
    root: str = "data"
    download: bool = True
    split_seed: int = 0
    # Train on this many of the training images left after the validation split (drawn with split_seed,
    # the same for every run); null: all of them. Validation and test sets stay whole.
    train_size: int | None = None


@dataclass
class SyntheticSchema(BatchingSchema):
    _target_: str = "src.data.images.make_synthetic"
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
class SeriesSchema:
    """How series are batched and read, the keys every source of series shares (src/data/series_assembly.py):
    small sets, so a validation part that may be a fraction."""

    batch_size: int = 32
    eval_batch_size: int = 512
    val_size: float = 0.2  # a count of training series, or a fraction of them when below 1
    normalize: Normalization = Normalization.channel
    patch: int = 1  # k consecutive steps read as one step of k x F features
    stride: int = 1  # keep every stride-th step (before patching)
    bucket: bool = True  # training batches of similar lengths (variable-length series only)
    split_seed: int = 0
    # Which validation part: the training split falls into 1/val_size stratified parts, so that
    # data.fold=0,1,2,3,4 is 5-fold cross-validation (the report averages the folds).
    fold: int = 0
    # Train on the whole training split, with no validation part: the last step of the protocol for small
    # data (choose on validation or folds, then refit); the run then chooses nothing, its last epoch is its model.
    refit: bool = False


@dataclass
class ArraysSchema(SeriesSchema):
    _target_: str = "src.data.array_files.load_arrays"
    path: str = "data.npz"
    test_path: str | None = None  # a separate file with x, y (and lengths); else x_test/y_test in path
    test_size: float = 0.2  # held out as the test split when the data has none


@dataclass
class UeaSchema(SeriesSchema):
    _target_: str = "src.data.uea.load_uea"
    name: str = "JapaneseVowels"
    root: str | None = None  # a folder of <name>/<name>_TRAIN.ts and _TEST.ts; null: aeon's shipped problems


DATA_SCHEMAS = {
    "image_data": ImageSchema,
    "synthetic_data": SyntheticSchema,
    "arrays_data": ArraysSchema,
    "uea_data": UeaSchema,
}


def buildable_targets() -> set[str]:
    """The classes and functions a seqlab config (and so a checkpoint) may name to build: the schemas' targets."""
    return {schema._target_ for schema in (*MODEL_SCHEMAS.values(), *DATA_SCHEMAS.values())}


@dataclass
class TrainerSchema:
    epochs: int = 5
    device: str = "auto"  # auto | cpu | cuda | cuda:N (an open set: checked by validate)
    grad_clip_norm: float | None = 1.0  # recurrent cells can have exploding gradients; null turns it off
    log_every_n_steps: int = 50
    progress: bool = True
    resume: bool = False
    data_placement: Placement = Placement.auto  # device (held there) | host (streamed per batch) | auto
    cuda_graph: GraphMode = GraphMode.auto  # auto: wherever the run allows; always; never (src/training/steps.py)
    precision: Precision = Precision.fp32
    # false: the test set is scored once, after the last epoch (or the early stop), instead of after every
    # epoch; a pruned trial never scores it (a study selects on val/acc: the test set each epoch is wasted)
    test_every_epoch: bool = True
    early_stopping_patience: int | None = None  # stop after this many epochs without a better val/acc
    num_threads: int | None = None  # null: torch's default, or the cores shared among parallel jobs
    # Cross-entropy above this means the run has blown up (chance on 10 classes is 2.3); null: no ceiling.
    max_loss: float | None = 1000.0


@dataclass
class BenchSchema:
    steps: int = 50  # timed optimizer steps per loop, after the warm-up steps
    warmup: int = 5
    epochs: int = 1  # then this many whole epochs per loop, for s/epoch and test accuracy (0: skip)
    which: str = "both"  # reference | framework | both
    num_workers: int = 1  # the reference loop's DataLoader workers, as in the reference recipe
    step_check: int = 0  # >0: this many framework steps compared with eager steps from one start


@dataclass
class RootSchema:
    model: Any = field(default_factory=dict)
    data: Any = field(default_factory=dict)
    optimizer: Any = field(default_factory=dict)
    trainer: Any = field(default_factory=dict)
    scheduler: Any = field(default_factory=dict)
    seed: int = 0


@dataclass
class BenchRootSchema(RootSchema):
    bench: BenchSchema = field(default_factory=BenchSchema)


def register_schemas() -> None:
    """Store the schemas under the names the YAML defaults lists refer to."""
    store = ConfigStore.instance()
    # Kept out of the model/data/trainer groups so they are not offered as options of those groups.
    store.store(group="schema", name="root", node=RootSchema)
    for name, node in (MODEL_SCHEMAS | DATA_SCHEMAS).items():
        store.store(group="schema", name=name, node=node)
    store.store(group="schema", name="trainer", node=TrainerSchema)
    store.store(group="schema", name="bench_root", node=BenchRootSchema)


def _check_device(value: str) -> None:
    is_cuda_index = value.startswith("cuda:") and value[5:].isdigit()
    require(value in DEVICE_WORDS[:3] or is_cuda_index, "trainer.device", value, " | ".join(DEVICE_WORDS))


def _positive(section: DictConfig, prefix: str, *keys: str, optional: bool = False) -> None:
    for key in keys:
        value = section[key]
        ok = (optional and value is None) or (value is not None and value > 0)
        require(
            ok,
            f"{prefix}.{key}",
            value,
            ("null or " if optional else "") + ("a number > 0" if isinstance(value, float) else "an integer > 0"),
        )


def _check_synthetic(data: DictConfig) -> None:
    """Values that would generate a degenerate task, refused before any data is made."""
    _positive(data, "data", "num_train", "num_test", "seq_len", "input_size")
    require(data.num_classes >= 2, "data.num_classes", data.num_classes, "an integer >= 2 (a classifier needs two)")
    require(data.noise >= 0, "data.noise", data.noise, "a number >= 0 (the noise's standard deviation)")


def _check_model(model: DictConfig) -> None:
    """The ranges of the model keys a family has (each family's schema says which)."""
    _positive(model, "model", *(key for key in ("hidden_size", "num_layers") if key in model))
    for key in ("dropout", "head_dropout"):
        if key in model:
            require(0 <= model[key] < 1, f"model.{key}", model[key], "a number in [0, 1)")
    if "filters" not in model:
        return
    for key in ("filters", "kernels"):
        values = list(model[key])
        require(values and all(v > 0 for v in values), f"model.{key}", values, "a non-empty list of integers > 0")
    require(
        len(model.kernels) == len(model.filters),
        "model.kernels",
        list(model.kernels),
        f"one kernel width per filter count ({len(model.filters)})",
    )


def model_summary(model: DictConfig) -> str:
    """The model in a few words, for logs, describe and the bench: `lstm 1x8 head=last + fcn 128-256-128`;
    another family: its class and its keys."""
    if "cell" not in model:
        keys = " ".join(f"{key}={value}" for key, value in model.items() if key != "_target_")
        return f"{str(model._target_).rsplit('.', 1)[-1]} {keys}".strip()
    words = f"{model.cell} {model.num_layers}x{model.hidden_size}{' bi' if model.bidirectional else ''}"
    words += f" head={model.head}"
    if "filters" in model:
        words += f" + fcn {'-'.join(map(str, model.filters))} (kernels {'-'.join(map(str, model.kernels))})"
        words += " shuffled" * bool(model.shuffle) + " se" * bool(model.squeeze_excite)
    return words


def _check_refit(cfg: DictConfig) -> None:
    """A refit has no validation part: nothing may be chosen or stepped by validation accuracy."""
    patience = cfg.trainer.early_stopping_patience
    require(patience is None, "trainer.early_stopping_patience", patience, "null with data.refit=true (no validation)")
    target = (cfg.scheduler or {}).get("_target_", "")
    require(
        not str(target).endswith("ReduceLROnPlateau"),
        "scheduler",
        "plateau",
        "a schedule that does not watch val/acc (none | cosine | step | onecycle) with data.refit=true",
    )


def validate(cfg: DictConfig) -> None:
    """Check the ranges of a composed config; raise ConfigError on the first bad value."""
    model, data, trainer = cfg.model, cfg.data, cfg.trainer
    _check_model(model)
    _positive(data, "data", "batch_size", "eval_batch_size")
    if data.get("_target_") == SyntheticSchema._target_:
        _check_synthetic(data)
    if data.get("train_size") is not None:
        require(data.train_size >= 1, "data.train_size", data.train_size, "null (all) or an integer >= 1")
    require(
        data.val_size > 0,
        "data.val_size",
        data.val_size,
        ("a count > 0, or a fraction below 1," if "patch" in data else "an integer > 0:")
        + " model selection needs a validation set",
    )
    if "patch" in data:
        _positive(data, "data", "patch", "stride")
        require(data.fold >= 0, "data.fold", data.fold, "an integer >= 0 (which validation part)")
    if data.get("refit"):
        _check_refit(cfg)
    lr = cfg.optimizer.get("lr")
    require(isinstance(lr, (int, float)) and lr > 0, "optimizer.lr", lr, "a number > 0")
    if cfg.scheduler:
        interval = cfg.scheduler.get("interval")
        require(interval in Interval.__members__, "scheduler.interval", interval, names(Interval))
        # torch accepts these at construction and divides by them at the first step, mid-run.
        periods = [key for key in ("T_max", "step_size", "T_0") if key in cfg.scheduler]
        if trainer.epochs > 0:
            _positive(cfg.scheduler, "scheduler", *periods)
    require(trainer.epochs >= 0, "trainer.epochs", trainer.epochs, "an integer >= 0")
    _positive(trainer, "trainer", "log_every_n_steps")
    _positive(trainer, "trainer", "grad_clip_norm", "max_loss", optional=True)
    for key in ("early_stopping_patience", "num_threads"):
        require(trainer[key] is None or trainer[key] > 0, f"trainer.{key}", trainer[key], "null or an integer > 0")
    _check_device(trainer.device)
