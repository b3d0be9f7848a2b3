"""The `study` sweeper as Hydra discovers it: hydra/sweeper=study runs an asynchronous Optuna study with
a pruner. Its config is Hydra's Optuna sweeper's (params, direction, n_trials, n_jobs, study_name,
storage, sampler) plus `pruner`; the work is done in src/sweeps/study_sweeper.py, imported only when a
sweep starts, so that plugin discovery on every command stays fast."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from omegaconf import MISSING

from src.sweeps.trial_report import SWEEPER  # no heavy imports: discovery stays fast


class StudySweeper(Sweeper):
    """src.sweeps.study_sweeper.StudySweeper, here because Hydra instantiates plugins only from hydra_plugins."""

    def __init__(self, **settings: Any) -> None:
        from src.sweeps.study_sweeper import StudySweeper as Implementation

        self.implementation = Implementation(**settings)

    def setup(self, **kwargs: Any) -> None:
        self.implementation.setup(**kwargs)

    def sweep(self, arguments: list[str]) -> Any:
        return self.implementation.sweep(arguments)


@dataclass
class TPESamplerConf:
    _target_: str = "optuna.samplers.TPESampler"
    seed: int | None = 0
    n_startup_trials: int = 10
    multivariate: bool = True
    # Penalises the running trials' points, so that trials asked while others run spread out.
    constant_liar: bool = True


@dataclass
class RandomSamplerConf:
    _target_: str = "optuna.samplers.RandomSampler"
    seed: int | None = 0


@dataclass
class GPSamplerConf:
    _target_: str = "optuna.samplers.GPSampler"
    seed: int | None = 0
    n_startup_trials: int = 10


@dataclass
class CmaEsSamplerConf:
    _target_: str = "optuna.samplers.CmaEsSampler"
    seed: int | None = 0
    n_startup_trials: int = 1


@dataclass
class HyperbandPrunerConf:
    _target_: str = "optuna.pruners.HyperbandPruner"
    min_resource: int = 1
    # The epochs a trial trains at most: set, not Optuna's "auto" (estimated from the first finished trials).
    max_resource: Any = "${trainer.epochs}"
    reduction_factor: int = 3


@dataclass
class MedianPrunerConf:
    _target_: str = "optuna.pruners.MedianPruner"
    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1


@dataclass
class SuccessiveHalvingPrunerConf:
    _target_: str = "optuna.pruners.SuccessiveHalvingPruner"
    min_resource: int = 1
    reduction_factor: int = 4
    min_early_stopping_rate: int = 0


@dataclass
class NoPrunerConf:
    _target_: str = "optuna.pruners.NopPruner"


@dataclass
class StudySweeperConf:
    _target_: str = SWEEPER
    # The sweeper builds the sampler and pruner itself, so that a bad argument is one line naming its key.
    _recursive_: bool = False
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}, {"pruner": "hyperband"}])
    sampler: Any = MISSING
    pruner: Any = MISSING  # hydra/sweeper/pruner=none: every trial runs all its epochs
    direction: str = "maximize"  # maximize the validation accuracy, or minimize the validation loss
    # null: Optuna's journal file in the sweep directory (optuna.journal); `memory`; a journal file's path;
    # or an RDB URL (postgresql://..., mysql://...) for trials on many machines.
    storage: str | None = None
    study_name: str | None = None
    n_trials: int = 20
    n_jobs: int = 2  # trials in flight at once
    # The share of trials that may fail before the sweep exits non-zero at its end (the study goes on).
    max_failure_rate: float = 0.0
    # Trials on many machines (RDB storages only): a running trial's heartbeat every heartbeat_interval
    # seconds; one silent for grace_period (null: two intervals) is failed, by any sweep process of the study.
    heartbeat_interval: int | None = None
    grace_period: int | None = None
    # A trial whose process died (a killed process, a lost node) runs again from its checkpoint, this many times.
    max_retries: int = 0
    params: dict[str, str] | None = None
    # A function (config, trial) -> None that suggests more parameters, as in Hydra's Optuna sweeper.
    custom_search_space: str | None = None


store = ConfigStore.instance()
store.store(group="hydra/sweeper", name="study", node=StudySweeperConf, provider="seqlab")
for name, node in (
    ("tpe", TPESamplerConf),
    ("random", RandomSamplerConf),
    ("gp", GPSamplerConf),
    ("cmaes", CmaEsSamplerConf),
):
    store.store(group="hydra/sweeper/sampler", name=name, node=node, provider="seqlab")
for name, node in (
    ("hyperband", HyperbandPrunerConf),
    ("median", MedianPrunerConf),
    ("successive_halving", SuccessiveHalvingPrunerConf),
    ("none", NoPrunerConf),
):
    store.store(group="hydra/sweeper/pruner", name=name, node=node, provider="seqlab")
