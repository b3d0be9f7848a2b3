"""Entry point: `python -m src.run [overrides]` trains one classifier from the composed conf/.

This is the only module that reads the config; everything below it takes plain objects and values.
"""

import json
import logging
import math
import os
import random
import sys
import time
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter

from src import tags
from src.models import parameter_table
from src.schema import ConfigError, register_schemas, validate
from src.train import Diverged, TrainState, fit

log = logging.getLogger(__name__)
register_schemas()


def pick_device(name: str) -> torch.device:
    """`auto` is CUDA when there is one, else CPU; asking for a CUDA device that is absent is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("trainer.device", name, "cpu or auto: this machine has no CUDA device")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError("trainer.device", name, f"cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return device


def format_parameters(model: torch.nn.Module) -> tuple[str, int]:
    """The parameter table as Markdown (name, shape, count; total), and the total."""
    rows, total = parameter_table(model)
    lines = ["| name | shape | count |", "| --- | --- | ---: |"]
    lines += [f"| {name} | {tuple(shape)} | {count:,} |" for name, shape, count in rows]
    lines.append(f"| **total** | | **{total:,}** |")
    return "\n".join(lines), total


def final_metrics(state: TrainState, status: str, num_params: int, seconds: float, device: str) -> dict:
    """metrics.json: the last epoch's figures, the best validation accuracy, and how the run ended."""
    last = state.history[-1] if state.history else {}
    figures = {
        "test_acc": last.get(tags.TEST_ACC), "test_loss": last.get(tags.TEST_LOSS),
        "val_acc": last.get(tags.VAL_ACC), "train_acc": last.get(tags.TRAIN_ACC),
        "train_loss": last.get(tags.TRAIN_LOSS), "best_val_acc": max(state.best_val_acc, 0.0),
        "epochs_completed": state.epoch, "num_params": num_params, "seconds": round(seconds, 3),
        "device": device, "status": status,
    }
    # JSON has no NaN: a figure that does not exist (no training epoch yet) is null.
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in figures.items()}


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """Train one classifier; return the final validation accuracy for sweepers to optimise."""
    validate(cfg)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.trainer.device)
    data = instantiate(cfg.data).to(device)
    model = instantiate(cfg.model, input_size=data.input_size, num_classes=data.num_classes,
                        seq_len=data.seq_len).to(device)
    optimizer = instantiate(cfg.optimizer)(model.parameters())
    table, num_params = format_parameters(model)
    log.info("device %s; data %s view, %d steps of %d features; parameters:\n%s",
             device, data.view, data.seq_len, data.input_size, table)
    config = OmegaConf.to_container(cfg, resolve=True)
    state, status, started = TrainState(), "ok", time.perf_counter()
    with SummaryWriter(str(run_dir)) as writer:
        writer.add_text(tags.CONFIG_TEXT, f"```yaml\n{OmegaConf.to_yaml(cfg, resolve=True)}```")
        writer.add_text(tags.PARAMETERS_TEXT, table)
        try:
            fit(model, data, optimizer, state, epochs=cfg.trainer.epochs,
                generator=torch.Generator().manual_seed(cfg.seed),
                grad_clip_norm=cfg.trainer.grad_clip_norm, log_every_n_steps=cfg.trainer.log_every_n_steps,
                writer=writer, progress=cfg.trainer.progress, checkpoint_dir=run_dir / "checkpoints",
                config=config)
        except Diverged as error:
            status = "diverged"
            log.error("diverged: %s; the last good checkpoint is kept", error)
    metrics = final_metrics(state, status, num_params, time.perf_counter() - started, str(device))
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log.info("metrics: %s", json.dumps(metrics))
    # Sweepers cannot rank NaN: a run that never validated gets the worst finite score.
    return metrics["val_acc"] if status == "ok" and metrics["val_acc"] is not None else 0.0


def one_line(error: BaseException) -> str:
    """Reduce an exception (Hydra's multi-line reports and their causes) to one readable line."""
    parts = [error, error.__cause__] if error.__cause__ is not None else [error]
    if type(error).__name__ == "InstantiationException":  # its own text is only "Error in call to ..."
        parts = parts[1:] or parts
    kept = []
    for line in "\n".join(map(str, parts)).splitlines():
        line = line.strip()
        if line.startswith("Config search path"):
            break
        if line and not line.startswith(("full_key:", "object_type=", "reference_type=")):
            kept.append(line)
    return " ".join(kept) or type(error).__name__


def cli() -> None:
    """Run the Hydra app; any error becomes one line and exit 1 (HYDRA_FULL_ERROR=1 shows the traceback)."""
    wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let Hydra's errors reach us instead of its multi-line report
    try:
        main()
    except Exception as error:
        if wants_traceback:
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    cli()
