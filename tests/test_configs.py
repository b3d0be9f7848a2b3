"""Every option of every config group composes and instantiates; every bad value is refused in one line."""

import gzip
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.errors import ConfigCompositionException, MissingConfigException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import CONF, compose_config, easy_images, refused_line, write_idx
from src.config.choices import Cell, GraphMode, Precision
from src.config.errors import ConfigError, one_line
from src.config.schema import validate
from src.data.image_files import CACHE_NAME, DataError
from src.data.images import ImageData
from src.data.series import SeriesData
from src.models.fcn import RecurrentFCN
from src.models.recurrent import RecurrentClassifier
from src.training.job import train_job
from src.training.schedules import Schedule, build_schedule


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


def test_groups_have_the_promised_options():
    assert options("model") == ["gru", "gru_fcn", "lstm", "lstm_fcn", "rnn"]
    assert options("data") == ["arrays", "fashion_mnist", "kmnist", "mnist", "synthetic", "uea"]
    assert options("optimizer") == ["adam", "adamw", "rmsprop", "sgd"]
    assert options("trainer") == ["default"]
    assert options("scheduler") == ["cosine", "none", "onecycle", "plateau", "step"]
    assert options("hparams_search") == ["lstm_optuna", "pruned", "series"]
    assert options("experiment") == ["lstm_rows_flatten", "lstm_rows_last", "series", "timeseries"]


@pytest.mark.parametrize("option", options("scheduler"))
def test_every_scheduler_composes_with_its_interval(option):
    cfg = compose_config(f"scheduler={option}")
    validate(cfg)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    schedule = build_schedule(OmegaConf.to_container(cfg.scheduler, resolve=True), optimizer, total_steps=10)
    if option == "none":
        assert schedule is None
        return
    assert isinstance(schedule, Schedule) and type(schedule.scheduler).__module__ == "torch.optim.lr_scheduler"
    assert schedule.interval == ("step" if option == "onecycle" else "epoch")


def test_plateau_halves_the_learning_rate_after_patience_epochs_without_improvement():
    cfg = compose_config("scheduler=plateau")  # mode max, factor 0.5, patience 1
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    schedule = build_schedule(OmegaConf.to_container(cfg.scheduler, resolve=True), optimizer, total_steps=10)
    rates = []
    for val_acc in (0.5, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7):
        schedule.after_step()  # an epoch schedule ignores steps
        schedule.after_epoch(val_acc)
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])


def test_onecycle_steps_per_batch_over_the_runs_total_steps():
    cfg = compose_config("scheduler=onecycle", "optimizer.lr=0.01")
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=0.01)
    schedule = build_schedule(OmegaConf.to_container(cfg.scheduler, resolve=True), optimizer, total_steps=20)
    assert schedule.scheduler.total_steps == 20
    for _ in range(19):
        optimizer.step()
        schedule.after_step()
    schedule.after_epoch(0.5)  # a step schedule ignores epochs
    assert optimizer.param_groups[0]["lr"] < 0.01 / 25
    assert schedule.host_bound_reason() and "momentum" in schedule.host_bound_reason()


def test_a_list_of_one_max_lr_per_parameter_group_reaches_onecycle_as_a_list():
    cfg = compose_config("scheduler=onecycle", "scheduler.max_lr=[0.02]")
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))], lr=0.01)
    schedule = build_schedule(OmegaConf.to_container(cfg.scheduler, resolve=True), optimizer, total_steps=20)
    assert schedule.scheduler.optimizer.param_groups[0]["max_lr"] == 0.02


def test_optuna_study_and_slurm_launcher_compose():
    with_hydra = dict(return_hydra_config=True)
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        sweeper = compose("config", overrides=["hparams_search=lstm_optuna"], **with_hydra).hydra.sweeper
        pruned = compose("config", overrides=["hparams_search=pruned", "trainer.epochs=5"], **with_hydra).hydra.sweeper
        launcher = compose("config", overrides=["hydra/launcher=slurm"], **with_hydra).hydra.launcher
        packed = compose("config", overrides=["hydra/launcher=packed"], **with_hydra).hydra.launcher
    assert sweeper._target_.endswith("StudySweeper") and sweeper.pruner._target_ == "optuna.pruners.NopPruner"
    assert sweeper.direction == "maximize" and sweeper.sampler.seed == 0
    assert set(sweeper.params) == {
        "model.cell",
        "model.hidden_size",
        "model.num_layers",
        "model.dropout",
        "optimizer.lr",
    }
    # Hyperband's largest budget is the run's epochs, set rather than estimated from finished trials.
    assert pruned.pruner._target_ == "optuna.pruners.HyperbandPruner" and pruned.pruner.max_resource == 5
    assert launcher._target_.endswith("SlurmLauncher") and launcher.gpus_per_node == 1 and launcher.timeout_min == 120
    assert packed._target_.endswith("PackedLauncher") and packed.jobs_per_device is None


@pytest.mark.parametrize("option", options("model"))
def test_every_model_composes_and_instantiates(option):
    cfg = compose_config(f"model={option}")
    validate(cfg)
    cell = option.removesuffix("_fcn")
    assert cfg.model.cell == Cell[cell] and isinstance(cfg.model.cell, Cell)
    model = instantiate(cfg.model, input_size=28, num_classes=10, seq_len=28)
    assert isinstance(model, RecurrentClassifier) and model.rnn.mode.startswith(cell.upper())
    assert isinstance(model, RecurrentFCN) == option.endswith("_fcn")
    assert model(torch.rand(3, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("option", options("data"))
def test_every_dataset_composes_and_instantiates(option, idx_root: Path, tmp_path: Path):
    overrides = [f"data={option}"]
    if option in ("mnist", "fashion_mnist", "kmnist"):  # the image datasets read the tiny IDX files the fixture wrote
        overrides += [f"data.root={idx_root}", "data.download=false", "data.val_size=100"]
    if option == "arrays":  # your own series: a tiny file of fixed length
        np.savez(tmp_path / "my.npz", x=np.random.rand(200, 7, 3), y=np.arange(200) % 4)
        overrides += [f"data.path={tmp_path / 'my.npz'}"]
    if option == "uea":  # a shipped problem of fixed length (the default, JapaneseVowels, varies: test_uea.py)
        overrides += ["data.name=BasicMotions", "data.val_size=8"]
    cfg = compose_config(*overrides)
    validate(cfg)
    data = instantiate(cfg.data)
    assert isinstance(data, SeriesData if option in ("arrays", "uea") else ImageData)
    x, y = next(data.batches("train"))
    assert x.shape[1:] == (data.seq_len, data.input_size) and len(x) == len(y) == cfg.data.batch_size


@pytest.mark.parametrize("option", options("optimizer"))
def test_every_optimizer_composes_as_a_partial(option):
    cfg = compose_config(f"optimizer={option}")
    validate(cfg)
    optimizer = instantiate(cfg.optimizer)([torch.nn.Parameter(torch.zeros(2))])
    assert type(optimizer).__name__.lower() == option and optimizer.param_groups[0]["lr"] == cfg.optimizer.lr


def test_defaults_and_run_directories():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    assert (cfg.trainer.epochs, cfg.trainer.device, cfg.model.cell, cfg.optimizer.lr) == (5, "auto", "lstm", 1e-3)
    assert cfg.data.dataset == "mnist" and cfg.data.batch_size == 256 and cfg.seed == 0
    assert cfg.trainer.precision == Precision.fp32 and cfg.trainer.cuda_graph == GraphMode.auto
    assert cfg.hydra.run.dir.startswith("outputs/runs/")
    sweep = OmegaConf.to_container(cfg.hydra.sweep)  # unresolved: the job number exists only in a sweep
    assert sweep["dir"].startswith("outputs/multirun/") and sweep["subdir"].startswith("${hydra.job.num}_")


@pytest.mark.parametrize(
    ("experiment", "head", "lr", "batch_size", "epochs", "num_params"),
    [
        ("lstm_rows_last", "last", 1e-3, 256, 5, 821_770),
        ("lstm_rows_flatten", "flatten", 5e-3, 64, 3, 821_770 - 2_570 + 256 * 28 * 10 + 10),
    ],
)
def test_reference_recipes(experiment, head, lr, batch_size, epochs, num_params):
    cfg = compose_config(f"experiment={experiment}")
    validate(cfg)
    assert (cfg.model.head, cfg.optimizer.lr, cfg.data.batch_size, cfg.trainer.epochs) == (head, lr, batch_size, epochs)
    assert (cfg.model.cell, cfg.model.hidden_size, cfg.model.num_layers) == ("lstm", 256, 2)
    model = instantiate(cfg.model, input_size=28, num_classes=10, seq_len=28)
    assert sum(p.numel() for p in model.parameters()) == num_params


def test_presets_speak_of_the_project_only():
    for preset in (CONF / "experiment").glob("*.yaml"):
        assert "../" not in preset.read_text() and "shared/" not in preset.read_text(), preset.name


def test_the_bench_schema_types_its_keys():
    cfg = compose_config("bench.steps=3", config_name="bench")
    assert cfg.bench.steps == 3 and cfg.bench.which == "both"
    with pytest.raises(ConfigError, match="stepz") as raised:  # composition refuses it, naming the override
        compose_config("bench.stepz=3", config_name="bench")
    assert raised.value.key == "bench.stepz" and isinstance(raised.value.__cause__, ConfigCompositionException)


def corrupt_magic(root: Path) -> None:
    with gzip.open(root / "train-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(b"\x00\x00\x99\x07" + bytes(100))


def mismatched_lengths(root: Path) -> None:
    write_idx(root / "short", train=500)
    (root / "short" / "train-labels-idx1-ubyte.gz").replace(root / "train-labels-idx1-ubyte.gz")


def truncated(root: Path) -> None:
    data = gzip.decompress((root / "t10k-images-idx3-ubyte.gz").read_bytes())
    (root / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(data[: len(data) // 2]))


def empty_test_split(root: Path) -> None:
    """A decoded cache with no test images (torchvision refuses an empty IDX file before we see it)."""
    images, labels = easy_images(600, 1)
    empty = {"test_x": images[:0], "test_y": labels[:0], "classes": [str(k) for k in range(10)]}
    (root / "MNIST").mkdir()
    torch.save({"train_x": images, "train_y": labels, **empty}, root / "MNIST" / CACHE_NAME)


def one_class(root: Path) -> None:
    labels = gzip.decompress((root / "train-labels-idx1-ubyte.gz").read_bytes())
    (root / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels[:8] + bytes(len(labels) - 8)))


# Hydra's errors for a config that cannot be composed: a missing option of a group, and anything else.
MISSING, COMPOSE = MissingConfigException, ConfigCompositionException
IDX = ("data=mnist", "data.root={root}", "data.download=false", "data.val_size=100")
BAD_INPUTS = [
    # (overrides, how to spoil the IDX files or None, the exception that refuses them, what its one line must contain)
    (("model=grux",), None, MISSING, ["model/grux", "gru gru_fcn lstm lstm_fcn rnn"]),
    (("optimizer=adamx",), None, MISSING, ["optimizer/adamx", "adam adamw rmsprop sgd"]),
    (("data=imagenet",), None, MISSING, ["data/imagenet", "arrays fashion_mnist kmnist mnist synthetic uea"]),
    (("experiment=nope",), None, MISSING, ["experiment/nope", "lstm_rows_last"]),
    (("+experiment=lstm_rows_last",), None, COMPOSE, ["+experiment=lstm_rows_last", "write experiment=lstm_rows_last"]),
    (("model.hiden_size=3",), None, COMPOSE, ["hiden_size", "RecurrentSchema"]),
    (("trainer.epoch=3",), None, COMPOSE, ["trainer.epoch", "TrainerSchema"]),
    (("model.hidden_size=abc",), None, COMPOSE, ["model.hidden_size=abc", "Integer"]),
    (("model.hidden_size=1.5",), None, COMPOSE, ["model.hidden_size=1.5", "Integer"]),
    (("seed=abc",), None, COMPOSE, ["seed=abc", "Integer"]),
    (("seed=1.5",), None, COMPOSE, ["seed=1.5", "Integer"]),
    (("trainer.progress=maybe",), None, COMPOSE, ["trainer.progress=maybe", "bool"]),
    (("model.hidden_size=0",), None, ConfigError, ["model.hidden_size=0", "an integer > 0"]),
    (("model.num_layers=-1",), None, ConfigError, ["model.num_layers=-1", "an integer > 0"]),
    (("model.dropout=1.0",), None, ConfigError, ["model.dropout=1.0", "[0, 1)"]),
    (("model.dropout=-0.1",), None, ConfigError, ["model.dropout=-0.1", "[0, 1)"]),
    (("model.head=first",), None, COMPOSE, ["model.head=first", "one of [last, flatten, mean, max, attention]"]),
    (("model.cell=transformer",), None, COMPOSE, ["model.cell=transformer", "expected one of [rnn, gru, lstm]"]),
    (("model.init=zeros",), None, COMPOSE, ["model.init=zeros", "expected one of [orthogonal, torch]"]),
    (
        ("data.view=diagonal",),
        None,
        COMPOSE,
        ["data.view=diagonal", "expected one of [rows, columns, pixels, permuted]"],
    ),
    (("data.batch_size=0",), None, ConfigError, ["data.batch_size=0", "an integer > 0"]),
    ((*IDX, "data.train_size=0"), None, ConfigError, ["data.train_size=0", "null (all) or an integer >= 1"]),
    ((*IDX, "data.train_size=501"), None, ConfigError, ["data.train_size=501", "at most 500"]),
    (
        ("data=uea", "data.normalize=minmax"),
        None,
        COMPOSE,
        ["data.normalize=minmax", "expected one of [none, series, channel]"],
    ),
    (("data=uea", "data.stride=0"), None, ConfigError, ["data.stride=0", "an integer > 0"]),
    (
        ("data=uea", "data.val_size=0.5", "data.name=Nope"),
        None,
        DataError,
        ["data.name=Nope", "timeseriesclassification.com"],
    ),
    (
        ("data=uea", "data.val_size=1.5"),
        None,
        ConfigError,
        ["data.val_size=1.5", "a count (a whole number) or a fraction below 1"],
    ),
    (
        ("data=uea", "data.name=GunPoint", "data.val_size=0.01"),
        None,
        ConfigError,
        ["data.val_size=0.01", "leaving both parts"],
    ),
    (("data=uea", "data.val_size=0"), None, ConfigError, ["data.val_size=0", "a count > 0, or a fraction below 1"]),
    (
        ("data.val_size=0",),
        None,
        ConfigError,
        ["data.val_size=0", "an integer > 0: model selection needs a validation set"],
    ),
    (("data.val_size=5000",), None, ConfigError, ["data.val_size=5000", "below the training set size 2000"]),
    (("data.num_classes=1",), None, ConfigError, ["data.num_classes=1", "an integer >= 2"]),
    (("data.seq_len=0",), None, ConfigError, ["data.seq_len=0", "an integer > 0"]),
    (("data.noise=-0.5",), None, ConfigError, ["data.noise=-0.5", "a number >= 0"]),
    (("data.num_train=0",), None, ConfigError, ["data.num_train=0", "an integer > 0"]),
    (("data.num_test=0",), None, ConfigError, ["data.num_test=0", "an integer > 0"]),
    (
        ("data=mnist", "data.dataset=cifar10"),
        None,
        COMPOSE,
        ["data.dataset=cifar10", "expected one of [mnist, fashion_mnist, kmnist]"],
    ),
    (("optimizer.lr=-1",), None, ConfigError, ["optimizer.lr=-1", "a number > 0"]),
    (("optimizer=sgd", "optimizer.lr=0"), None, ConfigError, ["optimizer.lr=0", "a number > 0"]),
    (
        ("scheduler=cosine", "scheduler.interval=batch"),
        None,
        ConfigError,
        ["scheduler.interval='batch'", "step | epoch"],
    ),
    # Values that compose but that torch refuses, named by their key.
    (
        ("optimizer.betas=[2.0,0.9]",),
        None,
        ConfigError,
        ["optimizer.betas=[2.0, 0.9]", "Adam accepts", "Invalid beta parameter"],
    ),
    (("optimizer.weight_decay=-1",), None, ConfigError, ["optimizer.weight_decay=-1", "Invalid weight_decay value"]),
    (("optimizer=sgd", "optimizer.momentum=-0.5"), None, ConfigError, ["optimizer.momentum=-0.5", "SGD accepts"]),
    (("+optimizer.eps=-1",), None, ConfigError, ["optimizer.eps=-1", "Invalid epsilon value"]),
    (
        ("scheduler=plateau", "scheduler.factor=2.0"),
        None,
        ConfigError,
        ["scheduler.factor=2.0", "ReduceLROnPlateau accepts"],
    ),
    (
        ("+optimizer.nesterov=true",),
        None,
        ConfigError,
        ["optimizer.nesterov=True", "unexpected keyword argument 'nesterov'"],
    ),
    # Values of the wrong kind or length, which torch would trip over later without naming a key.
    (("optimizer.betas=[0.9]",), None, ConfigError, ["optimizer.betas=[0.9]", "a list of 2 numbers", "Adam"]),
    (("optimizer.betas=[0.9,0.99,0.9]",), None, ConfigError, ["optimizer.betas=[0.9, 0.99, 0.9]", "2 numbers"]),
    (("optimizer.betas=[a,b]",), None, ConfigError, ["optimizer.betas=['a', 'b']", "a list of 2 numbers"]),
    (("optimizer.weight_decay=[1]",), None, ConfigError, ["optimizer.weight_decay=[1]", "expected a number"]),
    (("+optimizer.amsgrad=maybe",), None, ConfigError, ["optimizer.amsgrad='maybe'", "true or false"]),
    (("scheduler=step", "scheduler.gamma=[0.3]"), None, ConfigError, ["scheduler.gamma=[0.3]", "StepLR"]),
    (("scheduler=plateau", "scheduler.patience=[1]"), None, ConfigError, ["scheduler.patience=[1]", "a number"]),
    (("scheduler=plateau", "scheduler.mode=[1]"), None, ConfigError, ["scheduler.mode=[1]", "a word"]),
    (("scheduler=cosine", "scheduler.eta_min=abc"), None, ConfigError, ["scheduler.eta_min='abc'", "a number"]),
    (
        ("scheduler=onecycle", "scheduler.max_lr=[0.01,0.02]"),
        None,
        ConfigError,
        ["scheduler.max_lr=[0.01, 0.02]", "OneCycleLR accepts", "max_lr has 2 values, param_groups has 1"],
    ),
    (("trainer.epochs=-2",), None, ConfigError, ["trainer.epochs=-2", "an integer >= 0"]),
    (("trainer.grad_clip_norm=0",), None, ConfigError, ["trainer.grad_clip_norm=0", "null or a number > 0"]),
    (("trainer.device=tpu",), None, ConfigError, ["trainer.device='tpu'", "auto | cpu | cuda | cuda:N"]),
    (("trainer.num_threads=0",), None, ConfigError, ["trainer.num_threads=0", "null or an integer > 0"]),
    (("trainer.max_loss=0",), None, ConfigError, ["trainer.max_loss=0", "null or a number > 0"]),
    (("trainer.log_every_n_steps=0",), None, ConfigError, ["trainer.log_every_n_steps=0", "an integer > 0"]),
    (
        ("trainer.data_placement=gpu",),
        None,
        COMPOSE,
        ["trainer.data_placement=gpu", "expected one of [auto, device, host]"],
    ),
    (("trainer.precision=fp8",), None, COMPOSE, ["trainer.precision=fp8", "expected one of [fp32, bf16, fp16-mixed]"]),
    (("trainer.precision=fp16-mixed",), None, ConfigError, ["trainer.precision='fp16-mixed'", "needs a CUDA device"]),
    (
        ("trainer.cuda_graph=maybe",),
        None,
        COMPOSE,
        ["trainer.cuda_graph=maybe", "expected one of [auto, always, never]"],
    ),
    (("trainer.cuda_graph=true",), None, COMPOSE, ["trainer.cuda_graph=true", "expected one of [auto, always, never]"]),
    (
        ("trainer.cuda_graph=always",),
        None,
        ConfigError,
        ["trainer.cuda_graph='always'", "CUDA graphs need a CUDA device"],
    ),
    (
        ("trainer.early_stopping_patience=0",),
        None,
        ConfigError,
        ["trainer.early_stopping_patience=0", "null or an integer > 0"],
    ),
    (("scheduler=exponential",), None, MISSING, ["scheduler/exponential", "cosine none onecycle plateau step"]),
    (("scheduler=cosine", "scheduler.T_max=0"), None, ConfigError, ["scheduler.T_max=0", "an integer > 0"]),
    (("scheduler=step", "scheduler.step_size=0"), None, ConfigError, ["scheduler.step_size=0", "an integer > 0"]),
    (
        ("data=mnist", "data.root={root}/empty", "data.download=false"),
        None,
        DataError,
        ["train-images-idx3-ubyte", "empty/MNIST/raw", "download=false"],
    ),
    (IDX, corrupt_magic, DataError, ["train-images-idx3-ubyte", "cannot decode"]),
    (IDX, truncated, DataError, ["t10k-images-idx3-ubyte", "cannot decode"]),
    (IDX, mismatched_lengths, DataError, ["MNIST/raw", "images (600) and labels (500) differ"]),
    (IDX, empty_test_split, ValueError, ["data.dataset=mnist in data.root=", "the test split is empty"]),
    (IDX, one_class, ValueError, ["data.dataset=mnist in data.root=", "the training split holds only class 0"]),
]


@pytest.mark.parametrize(
    ("overrides", "spoil", "error", "expected"),
    BAD_INPUTS,
    ids=[" ".join(o[-1:]) + (f" {s.__name__}" if s else "") for o, s, _, _ in BAD_INPUTS],
)
def test_bad_input_is_one_line_naming_key_and_allowed_values(tmp_path, overrides, spoil, error, expected):
    """Composed and built in-process as the CLI does; the CLI prints `error: ` + one_line (test_cli.py)."""
    root = tmp_path / "data"
    if any("{root}" in override for override in overrides):  # only the cases that read IDX files write them
        write_idx(root)
    if spoil:
        spoil(root)
    overrides = [
        "data=synthetic",
        "model.hidden_size=8",
        "trainer.device=cpu",
        *(o.format(root=root) for o in overrides),
    ]
    line = refused_line(tmp_path / "run", overrides, error)
    for fragment in expected:
        assert fragment in line


def test_a_run_directory_that_cannot_be_made_is_named(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError) as raised:
        train_job(
            compose_config("data=synthetic", "model.hidden_size=8", "trainer.epochs=0", "trainer.device=cpu"),
            blocker / "run",
            None,
            None,
            time.perf_counter(),
        )
    assert one_line(raised.value).startswith(f"cannot write {blocker}") and "Not a directory" in one_line(raised.value)


def test_a_file_that_cannot_be_read_is_not_reported_as_a_write(tmp_path):
    with pytest.raises(OSError) as raised:
        (tmp_path / "missing.json").read_text()
    assert one_line(raised.value) == f"{tmp_path / 'missing.json'}: No such file or directory"


def test_config_error_names_key_value_and_what_is_allowed():
    assert (
        str(ConfigError("data.view", "x", "rows | columns")) == "data.view='x' is not allowed: expected rows | columns"
    )
