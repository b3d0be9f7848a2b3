"""The learning-rate schedule: which scheduler, and whether it steps after every optimizer step or once
per epoch (`scheduler.interval`, as Lightning names it). The one place that decides when a scheduler steps."""

import inspect
from dataclasses import dataclass

import torch
from hydra.utils import instantiate
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from src.config.choices import Interval
from src.config.errors import require_argument_kinds


@dataclass
class Schedule:
    """A scheduler and when it steps; ReduceLROnPlateau is told the validation accuracy."""

    scheduler: LRScheduler | ReduceLROnPlateau
    interval: Interval

    def after_step(self) -> None:
        if self.interval == Interval.step:
            self.scheduler.step()

    def after_epoch(self, val_acc: float) -> None:
        if self.interval != Interval.epoch:
            return
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(val_acc)
        else:
            self.scheduler.step()

    def host_bound_reason(self) -> str | None:
        """Why this schedule cannot run under a CUDA graph step, or None."""
        if getattr(self.scheduler, "cycle_momentum", False):  # OneCycleLR, CyclicLR
            return f"{type(self.scheduler).__name__}'s momentum cycling rewrites Adam's betas on the host"
        return None


def build_schedule(config: dict, optimizer: torch.optim.Optimizer, total_steps: int) -> Schedule | None:
    """The configured schedule (None for scheduler=none). A scheduler stepped per optimizer step that
    takes `total_steps` (OneCycleLR) is given the run's: only the data knows the batches per epoch."""
    if not config:
        return None
    config = dict(config)
    interval = Interval(config.pop("interval"))
    # Plain lists, as torch's schedulers compute with them (OneCycleLR's max_lr=[...], one per group).
    scheduler_factory = instantiate(config, _convert_="all")
    require_argument_kinds("scheduler", config, scheduler_factory.func)
    parameters = inspect.signature(scheduler_factory.func).parameters
    extra = {"total_steps": max(1, total_steps)} if interval == Interval.step and "total_steps" in parameters else {}
    return Schedule(scheduler_factory(optimizer, **extra), interval)
