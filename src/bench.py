"""`python -m src.bench [overrides]`: the reference recipes' DataLoader loop against the framework's
loop, in one process, on the same data, model, optimizer step and seed; writes bench.json.

The reference loop does what torchvision's MNIST + ToTensor + DataLoader do for every sample (a PIL
image, ToTensor, Normalize, collate in a worker process, copy to the device) and takes eager steps;
the framework gathers batches from uint8 tensors already on the device and takes the step a run
takes (replayed as a CUDA graph where trainer.cuda_graph allows). With `bench.step_check=N`, N steps of
the framework's step are compared with eager steps from the same start (src/benchmarking/step_check.py).
"""

import json
import logging
from functools import partial
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from src.benchmarking.loop_timing import LOOPS, Timing, measure
from src.benchmarking.step_check import check_step
from src.config.errors import ConfigError
from src.config.schema import model_summary, register_schemas, validate
from src.runs.atomic import write_bytes_atomically
from src.runs.exits import cli, stop
from src.training.building import build_data, fresh_step
from src.training.devices import pick_device

log = logging.getLogger(__name__)
register_schemas()


@hydra.main(config_path="../conf", config_name="bench", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Run the chosen loops, print the comparison and write bench.json into the run directory."""
    try:
        report = run_bench(cfg, Path(HydraConfig.get().runtime.output_dir))
    except Exception as error:
        stop(error)  # one line, without Hydra's "Error executing job with overrides" before it
    log.info("\n".join(summary_lines(report)))


def run_bench(cfg: DictConfig, out_dir: Path) -> dict:
    """Measure the loops bench.which names (and the step check), write out_dir/bench.json, return its report."""
    validate(cfg)
    if cfg.bench.which not in (*LOOPS, "both"):
        raise ConfigError("bench.which", cfg.bench.which, "reference | framework | both")
    if cfg.bench.steps <= 0:
        raise ConfigError("bench.steps", cfg.bench.steps, "an integer > 0")
    for key in ("warmup", "epochs", "num_workers"):
        if cfg.bench[key] < 0:
            raise ConfigError(f"bench.{key}", cfg.bench[key], "an integer >= 0")
    if cfg.bench.step_check < 0:
        raise ConfigError("bench.step_check", cfg.bench.step_check, "an integer >= 0 (0: no check)")
    device = pick_device(cfg.trainer.device)
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    data = build_data(cfg, device)
    loops = LOOPS if cfg.bench.which == "both" else (cfg.bench.which,)
    # The reference loop takes eager steps; the framework the step a run takes.
    kinds = {"reference": "eager", "framework": "framework", "eager": "eager", "eager_capturable": "eager_capturable"}
    fresh = {name: partial(fresh_step, kind, cfg, data, device) for name, kind in kinds.items()}
    bench = cfg.bench
    timing = Timing(bench.steps, bench.warmup, bench.epochs, bench.num_workers, cfg.seed, str(cfg.trainer.precision))
    results = {loop: measure(loop, fresh[loop], data, timing) for loop in loops}
    by_kind = {kind: fresh[kind] for kind in ("framework", "eager", "eager_capturable")}
    check = check_step(by_kind, data, cfg.bench.step_check, cfg.seed) if cfg.bench.step_check else None
    report = {
        "device": str(torch.cuda.get_device_name(device) if device.type == "cuda" else device),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": model_summary(cfg.model),
        "data": f"{data_summary(cfg.data)} batch {cfg.data.batch_size}",
        "steps": cfg.bench.steps,
        "epochs": cfg.bench.epochs,
        "precision": str(cfg.trainer.precision),
    }
    for loop, figures in results.items():
        report.update({f"{loop}_{key}": value for key, value in figures.items()})
    if len(results) == 2:
        report["speedup"] = report["reference_s_per_step"] / report["framework_s_per_step"]
    if check:
        report["step_check"] = check
    write_bytes_atomically(out_dir / "bench.json", (json.dumps(report, indent=2) + "\n").encode())
    return report


def data_summary(data: DictConfig) -> str:
    """The data in a few words: the image set and its view, or the series' problem or file."""
    if "view" in data:
        return f"{data.get('dataset', 'synthetic')} {data.view}"
    return f"{data.get('name') or data.get('path')} series" + (f" in patches of {data.patch}" if data.patch > 1 else "")


def summary_lines(report: dict) -> list[str]:
    """The report as the table and lines the command prints."""
    lines = [
        f"{report['model']}, {report['data']}, {report['device']}, torch {report['torch_version']}",
        "| loop | s/step | samples/s | s/epoch | test acc |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for loop in LOOPS:
        if f"{loop}_s_per_step" not in report:
            continue
        epoch = f"{report[f'{loop}_s_per_epoch']:.2f}" if f"{loop}_s_per_epoch" in report else "-"
        accuracy = f"{report[f'{loop}_test_acc']:.4f}" if f"{loop}_test_acc" in report else "-"
        lines.append(
            f"| {loop} | {report[f'{loop}_s_per_step']:.4f} | {report[f'{loop}_samples_per_second']:.0f} "
            f"| {epoch} | {accuracy} |"
        )
    if "speedup" in report:
        lines.append(f"speedup (reference s/step / framework s/step): {report['speedup']:.2f}x")
    check = report.get("step_check")
    for kind in ("eager_capturable", "eager") if check else ():
        if f"max_abs_loss_diff_to_{kind}" in check:
            lines.append(
                f"{check['framework_step']} step against {kind} steps over {check['steps']} steps: largest "
                f"loss difference {check[f'max_abs_loss_diff_to_{kind}']:.3g} "
                f"({check[f'max_rel_loss_diff_to_{kind}']:.3g} relative)"
            )
    return lines


if __name__ == "__main__":
    cli(main)
