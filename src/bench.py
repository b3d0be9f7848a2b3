"""`python -m src.bench [overrides]`: the reference recipes' DataLoader loop against the framework's
loop, in one process, on the same data, model, optimizer step and seed; writes bench.json.

The reference loop does what torchvision's MNIST + ToTensor + DataLoader do for every sample (a PIL
image, ToTensor, Normalize, collate in a worker process, copy to the device) and takes eager steps;
the framework gathers batches from uint8 tensors already on the device and takes the step a run
takes (replayed as a CUDA graph where trainer.cuda_graph allows). `bench.step_check` steps of the
framework's step are compared with eager steps from the same start: the largest loss difference.
"""

import itertools
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from src.data import SequenceData
from src.job import build_data, build_step, build_training, pick_device
from src.run import cli
from src.schema import ConfigError, validate
from src.scoring import evaluate
from src.steps import GraphedStep, Step, make_capturable, make_step

log = logging.getLogger(__name__)
LOOPS = ("reference", "framework")


class ReferenceImages(Dataset):
    """Per sample what torchvision's MNIST.__getitem__ does: a PIL image, then ToTensor and Normalize."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float) -> None:
        self.images, self.labels = images.cpu(), labels.cpu()
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = Image.fromarray(self.images[index].numpy(), mode="L")
        return self.transform(image), int(self.labels[index])


def epoch_batches(loop: str, data: SequenceData, generator: torch.Generator, num_workers: int) -> Iterator:
    """One shuffled pass over the training split as (sequences (B, T, F), labels) on the data's device."""
    if loop == "framework":
        yield from data.batches("train", shuffle=True, generator=generator)
        return
    dataset = ReferenceImages(data.train_x, data.train_y, data.mean, data.std)
    loader = DataLoader(dataset, batch_size=data.batch_size, shuffle=True, num_workers=num_workers, generator=generator)
    device = data.device
    for images, labels in loader:  # images (B, 1, H, W)
        yield data.apply_view(images.to(device).squeeze(1)), labels.to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loop_step(loop: str, cfg: DictConfig, data: SequenceData, device: torch.device) -> tuple[torch.nn.Module, Step]:
    """A fresh model (the same initial weights for every loop) and the step this loop trains it with:
    `framework` the step a run takes, `reference` the eager step, `eager_capturable` the eager step
    with Adam's lr and step count on the GPU, as a CUDA graph keeps them."""
    torch.manual_seed(cfg.seed)
    model, optimizer, _ = build_training(cfg, data, device)  # the loops compare steps, not schedules
    if loop == "framework":
        return model, build_step(cfg, model, optimizer, None, data, device)
    if loop == "eager_capturable":
        make_capturable(optimizer, device)
    return model, make_step(model, optimizer, cfg.trainer.grad_clip_norm, cfg.trainer.precision, data.batch_size,
                            cuda_graph=False)


def measure(loop: str, cfg: DictConfig, data: SequenceData, device: torch.device) -> dict:
    """Seconds per step over bench.steps steps (after warm-up), then s/epoch and test accuracy."""
    model, step = loop_step(loop, cfg, data, device)
    generator, workers = torch.Generator().manual_seed(cfg.seed), cfg.bench.num_workers
    endless = itertools.chain.from_iterable(epoch_batches(loop, data, generator, workers) for _ in itertools.count())
    model.train()
    for x, y in itertools.islice(endless, cfg.bench.warmup):
        step(x, y)
    _sync(device)
    started = time.perf_counter()
    for x, y in itertools.islice(endless, cfg.bench.steps):
        step(x, y)
    _sync(device)
    result = {"s_per_step": (time.perf_counter() - started) / cfg.bench.steps}
    if cfg.bench.epochs:
        model, step = loop_step(loop, cfg, data, device)
        generator, seconds = torch.Generator().manual_seed(cfg.seed), []
        for _ in range(cfg.bench.epochs):
            model.train()
            started = time.perf_counter()
            for x, y in epoch_batches(loop, data, generator, workers):
                step(x, y)
            _sync(device)
            seconds.append(time.perf_counter() - started)
        # The first epoch pays for warm-up (worker start, allocator, cuDNN plans, capture): report the others.
        steady = seconds[1:] or seconds
        result["s_per_epoch"] = sum(steady) / len(steady)
        result["test_acc"] = evaluate(model, data, "test", cfg.trainer.precision)[1]
    result["samples_per_second"] = data.batch_size / result["s_per_step"]
    return result


@contextmanager
def exact_kernels() -> Iterator[None]:
    """Deterministic cuDNN and no TF32 while comparing steps: otherwise two runs of the same eager loop
    drift apart too, and the check would measure the kernels' rounding instead of the step."""
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def step_losses(loop: str, cfg: DictConfig, data: SequenceData, device: torch.device) -> tuple[torch.Tensor, bool]:
    """The losses of bench.step_check steps from the seeded start with one loop's step (see loop_step),
    and whether that step was a CUDA graph."""
    model, step = loop_step(loop, cfg, data, device)
    generator = torch.Generator().manual_seed(cfg.seed)
    batches = itertools.chain.from_iterable(data.batches("train", True, generator) for _ in itertools.count())
    model.train()
    # clone: a graph step's loss is its output buffer, overwritten by the next replay
    losses = torch.stack([step(x, y)[0].clone() for x, y in itertools.islice(batches, cfg.bench.step_check)])
    return losses, isinstance(step, GraphedStep)


def check_step(cfg: DictConfig, data: SequenceData, device: torch.device) -> dict:
    """The framework's step against eager steps over bench.step_check batches from one start, with exact
    kernels: the largest loss difference to the eager step with the same (capturable) Adam, which
    isolates graph replay, and to the plain eager step (0 where the framework's step is eager)."""
    with exact_kernels():
        losses = {}
        losses["framework"], graphed = step_losses("framework", cfg, data, device)
        losses["eager"] = step_losses("reference", cfg, data, device)[0]
        if graphed:
            losses["eager_capturable"] = step_losses("eager_capturable", cfg, data, device)[0]
    result = {"steps": cfg.bench.step_check, "framework_step": "cuda graph" if graphed else "eager",
              "last_eager_loss": losses["eager"][-1].item()}
    for kind in list(losses)[1:]:
        difference = (losses["framework"] - losses[kind]).abs()
        result[f"max_abs_loss_diff_to_{kind}"] = difference.max().item()
        result[f"max_rel_loss_diff_to_{kind}"] = (difference / losses[kind].abs()).max().item()
    return result


@hydra.main(config_path="../conf", config_name="bench", version_base="1.3")
def main(cfg: DictConfig) -> None:
    """Run the chosen loops, print the comparison and write bench.json into the run directory."""
    validate(cfg)
    if cfg.bench.which not in (*LOOPS, "both"):
        raise ConfigError("bench.which", cfg.bench.which, "reference | framework | both")
    if cfg.bench.steps <= 0:
        raise ConfigError("bench.steps", cfg.bench.steps, "an integer > 0")
    if cfg.bench.step_check < 0:
        raise ConfigError("bench.step_check", cfg.bench.step_check, "an integer >= 0 (0: no check)")
    device = pick_device(cfg.trainer.device)
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    data = build_data(cfg, device)
    loops = LOOPS if cfg.bench.which == "both" else (cfg.bench.which,)
    results = {loop: measure(loop, cfg, data, device) for loop in loops}
    check = check_step(cfg, data, device) if cfg.bench.step_check else None
    report = {"device": str(torch.cuda.get_device_name(device) if device.type == "cuda" else device),
              "torch_version": torch.__version__, "threads": torch.get_num_threads(),
              "model": f"{cfg.model.cell} {cfg.model.num_layers}x{cfg.model.hidden_size} head={cfg.model.head}",
              "data": f"{cfg.data.get('dataset', 'synthetic')} {cfg.data.view} batch {cfg.data.batch_size}",
              "steps": cfg.bench.steps, "epochs": cfg.bench.epochs, "precision": cfg.trainer.precision}
    for loop, figures in results.items():
        report.update({f"{loop}_{key}": value for key, value in figures.items()})
    if len(results) == 2:
        report["speedup"] = report["reference_s_per_step"] / report["framework_s_per_step"]
    if check:
        report["step_check"] = check
    path = Path(HydraConfig.get().runtime.output_dir) / "bench.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"{report['model']}, {report['data']}, {report['device']}, torch {report['torch_version']}",
             "| loop | s/step | samples/s | s/epoch | test acc |", "| --- | ---: | ---: | ---: | ---: |"]
    for loop, figures in results.items():
        epoch = f"{figures['s_per_epoch']:.2f}" if "s_per_epoch" in figures else "-"
        accuracy = f"{figures['test_acc']:.4f}" if "test_acc" in figures else "-"
        lines.append(f"| {loop} | {figures['s_per_step']:.4f} | {figures['samples_per_second']:.0f} | {epoch} | {accuracy} |")
    if "speedup" in report:
        lines.append(f"speedup (reference s/step / framework s/step): {report['speedup']:.2f}x")
    if check:
        for kind in ("eager_capturable", "eager"):
            if f"max_abs_loss_diff_to_{kind}" in check:
                lines.append(f"{check['framework_step']} step against {kind} steps over {check['steps']} steps: largest "
                             f"loss difference {check[f'max_abs_loss_diff_to_{kind}']:.3g} "
                             f"({check[f'max_rel_loss_diff_to_{kind}']:.3g} relative)")
    log.info("\n".join(lines + [f"written: {path}"]))


if __name__ == "__main__":
    cli(main)
