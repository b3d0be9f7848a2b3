"""Every option of every config group composes with Hydra's compose API and instantiates."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import ROOT
from src.data import SequenceData
from src.models import RecurrentClassifier
from src.schema import register_schemas, validate

CONF = ROOT / "conf"
register_schemas()


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


def composed(*overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra)


def test_groups_have_the_promised_options():
    assert options("model") == ["gru", "lstm", "rnn"]
    assert options("data") == ["fashion_mnist", "kmnist", "mnist", "synthetic"]
    assert options("optimizer") == ["adam", "adamw", "rmsprop", "sgd"]
    assert options("trainer") == ["default"]
    assert options("scheduler") == ["cosine", "none", "onecycle", "plateau", "step"]
    assert options("hparams_search") == ["lstm_optuna"]


@pytest.mark.parametrize("option", options("scheduler"))
def test_every_scheduler_composes_as_a_partial(option):
    cfg = composed(f"scheduler={option}")
    validate(cfg)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    if option == "none":
        assert not cfg.scheduler
        return
    extra = {"total_steps": 10} if option == "onecycle" else {}
    scheduler = instantiate(cfg.scheduler)(optimizer, **extra)
    assert type(scheduler).__module__ == "torch.optim.lr_scheduler"


def test_optuna_study_and_slurm_launcher_compose():
    cfg = composed("hparams_search=lstm_optuna", hydra=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper.direction == "maximize" and sweeper.sampler.seed == 0
    assert set(sweeper.params) == {"model.cell", "model.hidden_size", "model.num_layers", "model.dropout", "optimizer.lr"}
    launcher = composed("hydra/launcher=slurm", hydra=True).hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.gpus_per_node == 1 and launcher.timeout_min == 120


@pytest.mark.parametrize("option", options("model"))
def test_every_model_composes_and_instantiates(option):
    cfg = composed(f"model={option}")
    validate(cfg)
    model = instantiate(cfg.model, input_size=28, num_classes=10, seq_len=28)
    assert isinstance(model, RecurrentClassifier) and model.rnn.mode.startswith(option.upper())
    assert model(torch.rand(3, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("option", options("data"))
def test_every_dataset_composes_and_instantiates(option, idx_root: Path):
    overrides = [f"data={option}"]
    if option != "synthetic":  # the image datasets read the tiny IDX files the fixture wrote
        overrides += [f"data.root={idx_root}", "data.download=false", "data.val_size=100"]
    cfg = composed(*overrides)
    validate(cfg)
    data = instantiate(cfg.data)
    assert isinstance(data, SequenceData)
    x, y = next(data.batches("train"))
    assert x.shape[1:] == (data.seq_len, data.input_size) and len(x) == len(y) == cfg.data.batch_size


@pytest.mark.parametrize("option", options("optimizer"))
def test_every_optimizer_composes_as_a_partial(option):
    cfg = composed(f"optimizer={option}")
    validate(cfg)
    parameters = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = instantiate(cfg.optimizer)(parameters)
    assert isinstance(optimizer, torch.optim.Optimizer)
    assert type(optimizer).__name__.lower() == option
    assert optimizer.param_groups[0]["lr"] == cfg.optimizer.lr


def test_trainer_defaults_and_run_directories():
    cfg = composed(hydra=True)
    assert (cfg.trainer.epochs, cfg.trainer.device, cfg.model.cell, cfg.optimizer.lr) == (5, "auto", "lstm", 1e-3)
    assert cfg.data.dataset == "mnist" and cfg.data.batch_size == 256 and cfg.data.root == "data"
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
    cfg = composed(f"+experiment={experiment}")
    validate(cfg)
    assert (cfg.model.head, cfg.optimizer.lr, cfg.data.batch_size, cfg.trainer.epochs) == (head, lr, batch_size, epochs)
    assert (cfg.model.cell, cfg.model.hidden_size, cfg.model.num_layers) == ("lstm", 256, 2)
    model = instantiate(cfg.model, input_size=28, num_classes=10, seq_len=28)
    assert sum(p.numel() for p in model.parameters()) == num_params
