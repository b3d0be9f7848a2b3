"""Series of real numbers (N, T, F), possibly of different lengths, delivered in batches on the training device.

The image data's counterpart (src/data/images.py) for sensor traces, speech features and the UCR/UEA archive:
float values padded with zeros to the longest series, each series' length beside it. A batch is cut to
its own longest series; when the lengths differ it travels as `Padded` so the model never reads padding,
and training batches can be bucketed: shuffled, then sorted by length within windows of a few batches, so
that a batch holds series of similar length.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from src.data.batched import BatchedData
from src.data.padded import Padded

BUCKET_BATCHES = 16  # batches per window sorted by length: random enough across windows, little padding within


@dataclass(frozen=True)
class SeriesData(BatchedData):
    """Train/val/test series (N, T, F) float32, zero past each length, lengths (N,) int64 and labels (N,)."""

    train_x: Tensor
    train_lengths: Tensor
    train_y: Tensor
    val_x: Tensor
    val_lengths: Tensor
    val_y: Tensor
    test_x: Tensor
    test_lengths: Tensor
    test_y: Tensor
    class_names: tuple[str, ...]
    batch_size: int
    eval_batch_size: int
    variable_lengths: bool  # False: every series has all T steps, and batches are plain tensors
    bucket: bool = True
    channels: int = 1  # features of one original step; a patch of k steps has k * channels features
    view: str = "series"  # how the series are read, for the log: "series", or "series in patches of k"
    device: torch.device = torch.device("cpu")
    KEPT_ON_HOST: ClassVar[tuple[str, ...]] = ("train_lengths", "val_lengths", "test_lengths")  # read by packing

    @property
    def seq_len(self) -> int | None:
        """Steps of every sequence, or None when they differ (a model then cannot flatten them)."""
        return None if self.variable_lengths else self.train_x.shape[1]

    @property
    def input_size(self) -> int:
        return self.train_x.shape[2]

    def batches(
        self, split: str, shuffle: bool = False, generator: torch.Generator | None = None, first_batch: int = 0
    ) -> Iterator[tuple[Tensor | Padded, Tensor]]:
        """Yield (sequences (B, T_b, F) or Padded, labels (B,)) for one pass over a split, T_b the batch's
        longest series, from batch `first_batch` on (a resumed epoch: the same order is drawn, then the
        batches already trained on are skipped); evaluation keeps the split's order, so predictions line
        up with its labels."""
        values, lengths, labels = (getattr(self, f"{split}_{part}") for part in ("x", "lengths", "y"))
        order, sizes = self._order(lengths, self.split_batch_size(split), shuffle, generator)
        on_device = order.to(values.device)  # one copy of the whole order, not one per batch
        pairs = list(zip(order.split(sizes), on_device.split(sizes), strict=True))[first_batch:]
        for index, device_index in pairs:
            batch_lengths = lengths[index]
            steps = int(batch_lengths.max())  # read on the CPU: no wait for the device
            x = values[device_index, :steps].to(self.device, non_blocking=True)  # (B, T_b, F)
            y = labels[device_index].to(self.device, non_blocking=True)
            yield (Padded(x, batch_lengths) if self.variable_lengths else x), y

    def _order(
        self, lengths: Tensor, size: int, shuffle: bool, generator: torch.Generator | None
    ) -> tuple[Tensor, list[int]]:
        """The split's indices in batch order and the batch sizes."""
        order = torch.randperm(len(lengths), generator=generator) if shuffle else torch.arange(len(lengths))
        if not (shuffle and self.bucket and self.variable_lengths):
            return order, [len(chunk) for chunk in order.split(size)]
        windows = order.split(size * BUCKET_BATCHES)
        order = torch.cat([window[lengths[window].argsort(stable=True)] for window in windows])
        batches = order.split(size)
        shuffled = [batches[k] for k in torch.randperm(len(batches), generator=generator).tolist()]
        return torch.cat(shuffled), [len(batch) for batch in shuffled]

    def spread(self, split: str, count: int) -> Tensor:
        """The indices of `count` series spread evenly over a split, those `series` draws."""
        total = len(getattr(self, f"{split}_y"))
        return torch.linspace(0, total - 1, min(count, total)).round().long()

    def series(self, split: str, count: int) -> tuple[list[Tensor], Tensor | Padded, Tensor]:
        """`count` series spread evenly over a split (archive splits are often sorted by class): as drawn
        (each (T_i, channels), patches undone), as the model reads them, and their labels."""
        labels = getattr(self, f"{split}_y")
        index = self.spread(split, count)
        lengths = getattr(self, f"{split}_lengths")[index]
        values = getattr(self, f"{split}_x")[index.to(labels.device), : int(lengths.max())]  # (B, T, F)
        drawn = [v[:n].reshape(-1, self.channels).cpu() for v, n in zip(values, lengths.tolist(), strict=True)]
        x = values.to(self.device)
        return drawn, (Padded(x, lengths) if self.variable_lengths else x), labels[index.to(labels.device)].cpu()
