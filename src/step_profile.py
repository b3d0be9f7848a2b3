"""`python -m src.step_profile [overrides]`: where a training step's time goes, eager and as a CUDA graph.

For each step kind it times bench.steps steps, then profiles a few more with torch.profiler and
prints the host's busy time against the GPU kernels' time per step, and the costliest kernels.
A step whose wall time is well above its kernel time is bound by the host (Python, launches);
one whose wall time matches its kernel time is bound by the kernels themselves.
"""

import itertools
import json
import logging
import time
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from src.config.errors import ConfigError
from src.config.schema import model_summary, register_schemas, validate
from src.data.images import ImageData
from src.runs.atomic import write_bytes_atomically
from src.runs.exits import cli
from src.training.building import build_data, fresh_step
from src.training.devices import pick_device
from src.training.steps import Step

log = logging.getLogger(__name__)
register_schemas()
PROFILED_STEPS = 10


def profile_loop(model: torch.nn.Module, step: Step, data: ImageData, *, seed: int, warmup: int, steps: int) -> dict:
    """Wall and kernel time per step of one step kind, after `warmup` steps, over `steps` steps."""
    device = data.device
    generator = torch.Generator().manual_seed(seed)
    batches = itertools.chain.from_iterable(data.batches("train", True, generator) for _ in itertools.count())
    model.train()
    for x, y in itertools.islice(batches, warmup):
        step(x, y)
    torch.cuda.synchronize(device)
    started = time.perf_counter()
    for x, y in itertools.islice(batches, steps):
        step(x, y)
    torch.cuda.synchronize(device)
    wall = (time.perf_counter() - started) / steps
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for x, y in itertools.islice(batches, PROFILED_STEPS):
            step(x, y)
        torch.cuda.synchronize(device)
    # Kernels only: the GPU track also carries user annotations (Optimizer.step ranges) that span kernels.
    totals: dict[str, list[float]] = {}
    for event in prof.events():
        if event.device_type == DeviceType.CUDA and not event.is_user_annotation:
            entry = totals.setdefault(event.name, [0.0, 0])
            entry[0] += event.device_time_total
            entry[1] += 1
    kernel_us = sum(us for us, _ in totals.values()) / PROFILED_STEPS
    top = sorted(totals.items(), key=lambda item: item[1][0], reverse=True)[:8]
    return {
        "step": type(step).__name__ if not hasattr(step, "func") else step.func.__name__,
        "wall_ms_per_step": wall * 1e3,
        "kernel_ms_per_step": kernel_us / 1e3,
        "kernel_launches_per_step": sum(count for _, count in totals.values()) / PROFILED_STEPS,
        "top_kernels": [
            {"name": name[:90], "ms_per_step": us / 1e3 / PROFILED_STEPS, "calls_per_step": count / PROFILED_STEPS}
            for name, (us, count) in top
        ],
    }


@hydra.main(config_path="../conf", config_name="bench", version_base="1.3")
def main(cfg: DictConfig) -> None:
    validate(cfg)
    device = pick_device(cfg.trainer.device)
    if device.type != "cuda":
        raise ConfigError(
            "trainer.device", cfg.trainer.device, "cuda: the profile compares GPU kernel time with wall time"
        )
    data = build_data(cfg, device)
    report = {
        "device": torch.cuda.get_device_name(device),
        "torch_version": torch.__version__,
        "model": model_summary(cfg.model),
        "batch_size": cfg.data.batch_size,
        "precision": cfg.trainer.precision,
        **{
            kind: profile_loop(
                *fresh_step(kind, cfg, data, device),
                data,
                seed=cfg.seed,
                warmup=cfg.bench.warmup,
                steps=cfg.bench.steps,
            )
            for kind in ("eager", "framework")
        },
    }
    path = Path(HydraConfig.get().runtime.output_dir) / "step_profile.json"
    write_bytes_atomically(path, (json.dumps(report, indent=2) + "\n").encode())
    lines = [f"{report['model']} batch {report['batch_size']} {report['precision']} on {report['device']}"]
    for name in ("eager", "framework"):
        r = report[name]
        lines.append(
            f"{name} ({r['step']}): wall {r['wall_ms_per_step']:.2f} ms/step, kernels "
            f"{r['kernel_ms_per_step']:.2f} ms/step in {r['kernel_launches_per_step']:.0f} launches"
        )
        lines += [f"    {k['ms_per_step']:.3f} ms  x{k['calls_per_step']:.0f}  {k['name']}" for k in r["top_kernels"]]
    log.info("\n".join(lines + [f"written: {path}"]))


if __name__ == "__main__":
    cli(main)
