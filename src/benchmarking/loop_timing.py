"""The two loops the benchmark times: the reference recipes' per-sample DataLoader loop and the
framework's device-resident batches, each driving a step from the same seeded start."""

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from src.benchmarking.step_check import FreshStep
from src.data.batched import BatchedData
from src.data.padded import Padded
from src.data.series import SeriesData
from src.training.scoring import evaluate

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


class ReferenceSeries(Dataset):
    """Per sample what a plain series Dataset does: one series (T_i, F) cut to its length, and its label."""

    def __init__(self, data: SeriesData) -> None:
        self.values, self.lengths, self.labels = data.train_x.cpu(), data.train_lengths.cpu(), data.train_y.cpu()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.values[index, : int(self.lengths[index])], int(self.labels[index])


def collate_series(samples: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor | Padded, torch.Tensor]:
    """A batch of series as a plain loop pads it: stacked when of one length, else zero-padded with lengths."""
    series, labels = zip(*samples, strict=True)
    lengths = torch.tensor([len(s) for s in series])
    values = torch.nn.utils.rnn.pad_sequence(list(series), batch_first=True)  # (B, T_b, F)
    batch = values if bool((lengths == lengths[0]).all()) else Padded(values, lengths)
    return batch, torch.tensor(labels)


def epoch_batches(loop: str, data: BatchedData, generator: torch.Generator, num_workers: int) -> Iterator:
    """One shuffled pass over the training split as (sequences (B, T, F), labels) on the data's device."""
    if loop == "framework":
        yield from data.batches("train", shuffle=True, generator=generator)
        return
    if isinstance(data, SeriesData):
        loader = DataLoader(
            ReferenceSeries(data),
            batch_size=data.batch_size,
            shuffle=True,
            num_workers=num_workers,
            generator=generator,
            collate_fn=collate_series,
        )
        for x, y in loader:
            yield x.to(data.device), y.to(data.device)
        return
    dataset = ReferenceImages(data.train_x, data.train_y, data.mean, data.std)
    loader = DataLoader(dataset, batch_size=data.batch_size, shuffle=True, num_workers=num_workers, generator=generator)
    device = data.device
    for images, labels in loader:  # images (B, 1, H, W)
        yield data.apply_view(images.to(device).squeeze(1)), labels.to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    """What the benchmark times: `steps` steps after `warmup`, then `epochs` whole epochs (0: none)."""

    steps: int
    warmup: int
    epochs: int
    num_workers: int  # the reference loop's DataLoader workers
    seed: int
    precision: str


def measure(loop: str, fresh: FreshStep, data: BatchedData, timing: Timing) -> dict:
    """Seconds per step over `steps` steps (after `warmup`), then s/epoch over `epochs` epochs and test accuracy."""
    steps, warmup, epochs, num_workers, seed = (
        timing.steps,
        timing.warmup,
        timing.epochs,
        timing.num_workers,
        timing.seed,
    )
    device = data.device
    model, step = fresh()
    generator = torch.Generator().manual_seed(seed)
    endless = itertools.chain.from_iterable(
        epoch_batches(loop, data, generator, num_workers) for _ in itertools.count()
    )
    model.train()
    for x, y in itertools.islice(endless, warmup):
        step(x, y)
    _sync(device)
    started = time.perf_counter()
    for x, y in itertools.islice(endless, steps):
        step(x, y)
    _sync(device)
    result = {"s_per_step": (time.perf_counter() - started) / steps}
    if epochs:
        model, step = fresh()
        generator, seconds = torch.Generator().manual_seed(seed), []
        for _ in range(epochs):
            model.train()
            started = time.perf_counter()
            for x, y in epoch_batches(loop, data, generator, num_workers):
                step(x, y)
            _sync(device)
            seconds.append(time.perf_counter() - started)
        # The first epoch pays for warm-up (worker start, allocator, cuDNN plans, capture): report the others.
        steady = seconds[1:] or seconds
        result["s_per_epoch"] = sum(steady) / len(steady)
        result["test_acc"] = evaluate(model, data, "test", timing.precision)[1]
    result["samples_per_second"] = data.batch_size / result["s_per_step"]
    return result
