"""What image and series data share: labelled train/val/test splits, delivered in batches on one device."""

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import fields, replace
from typing import ClassVar, TypeVar

import torch
from torch import Tensor

from src.config.choices import Placement
from src.data.padded import Padded

Data = TypeVar("Data", bound="BatchedData")


def choose_placement(placement: Placement | str, nbytes: int, free_bytes: int) -> Placement:
    """`auto` holds the data on the device when it takes at most a quarter of the device's free memory."""
    if placement != Placement.auto:
        return Placement(placement)
    return Placement.device if nbytes * 4 <= free_bytes else Placement.host


class BatchedData(ABC):
    """The base of ImageData and SeriesData, frozen dataclasses holding a split's tensors as `<split>_x`,
    `<split>_y` (labels (N,)) and the like, for the splits train, val and test."""

    class_names: tuple[str, ...]
    batch_size: int  # training batches
    eval_batch_size: int  # evaluation batches
    device: torch.device  # where batches are delivered (see `place`)
    # Tensors `place` leaves where they are (series lengths: packing reads them on the CPU), and tensors it
    # moves to the device even when the rest streams from host memory (what batches are read through).
    KEPT_ON_HOST: ClassVar[tuple[str, ...]] = ()
    ALWAYS_ON_DEVICE: ClassVar[tuple[str, ...]] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    @abstractmethod
    def seq_len(self) -> int | None:
        """Steps of every sequence the model reads, or None when they differ."""

    @property
    @abstractmethod
    def input_size(self) -> int:
        """Features of one step."""

    @abstractmethod
    def batches(
        self, split: str, shuffle: bool = False, generator: torch.Generator | None = None, first_batch: int = 0
    ) -> Iterator[tuple[Tensor | Padded, Tensor]]:
        """Yield (sequences (B, T, F) or Padded, labels (B,)) on `device` for one pass over a split, from
        batch `first_batch` on (a resumed epoch: the same order is drawn, then the trained batches skipped)."""

    @property
    def nbytes(self) -> int:
        tensors = (getattr(self, f.name) for f in fields(self))
        return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, Tensor))

    def place(self: Data, device: torch.device, placement: Placement | str = Placement.auto) -> Data:
        """Deliver batches on `device`, holding the data there (`device`) or streaming it from host
        memory, pinned for CUDA (`host`); `auto` holds it on the device when it takes at most a
        quarter of the device's free memory."""
        if placement == Placement.auto:  # a CPU's memory is the host's: holding and streaming are the same
            free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else self.nbytes * 4
            placement = choose_placement(placement, self.nbytes, free)
        moved = {}
        for name, value in ((f.name, getattr(self, f.name)) for f in fields(self)):
            if not isinstance(value, Tensor) or name in self.KEPT_ON_HOST:
                continue
            if placement == Placement.device or name in self.ALWAYS_ON_DEVICE:
                moved[name] = value.to(device)
            elif device.type == "cuda":
                moved[name] = value.pin_memory()  # lets the per-batch copy overlap with compute
        return replace(self, device=device, **moved)

    def split_batch_size(self, split: str) -> int:
        """The size of a split's batches: `batch_size` for training, `eval_batch_size` for the others."""
        return self.batch_size if split == "train" else self.eval_batch_size

    def num_batches(self, split: str) -> int:
        return -(-len(getattr(self, f"{split}_y")) // self.split_batch_size(split))
