"""Image datasets held whole as uint8 tensors, read as sequences, delivered in batches on the training device:
ImageData, and its two sources, the MNIST family (`load_images`) and a synthetic task (`make_synthetic`).

Small datasets (MNIST is 47 MB) fit on any device, so by default they are held there and batches are
gathered and scaled where the model runs: no worker processes, no per-sample Python, no host-to-device
copy per step. Data too large for the device streams from pinned host memory a batch at a time.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from src.config.choices import View
from src.config.errors import ConfigError
from src.config.schema import BatchingSchema
from src.data.batched import BatchedData
from src.data.image_files import load_decoded

IMAGE_SHAPE = (28, 28)  # every dataset of the MNIST family


def sequence_shape(view: View | str, height: int, width: int) -> tuple[int, int]:
    """(steps, features) of an image of height x width read in the given view."""
    return {View.rows: (height, width), View.columns: (width, height)}.get(View(view), (height * width, 1))


@dataclass(frozen=True)
class ImageData(BatchedData):
    """Train/val/test images (N, H, W) uint8 with labels, and how to batch and read them."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    test_x: Tensor
    test_y: Tensor
    class_names: tuple[str, ...]
    batch_size: int
    eval_batch_size: int
    view: View
    permutation: Tensor  # order of the H*W pixels for the `permuted` view
    mean: float = 0.0
    std: float = 1.0
    device: torch.device = torch.device("cpu")  # where batches are delivered (see `place`)
    ALWAYS_ON_DEVICE: ClassVar[tuple[str, ...]] = ("permutation",)  # the view is applied on the device

    @property
    def seq_len(self) -> int:
        return sequence_shape(self.view, *self.train_x.shape[1:])[0]

    @property
    def input_size(self) -> int:
        return sequence_shape(self.view, *self.train_x.shape[1:])[1]

    def as_sequences(self, images: Tensor) -> Tensor:
        """Scale uint8 images (B, H, W) to [0, 1] as ToTensor does, normalise, and apply the view."""
        return self.apply_view((images.float() / 255.0 - self.mean) / self.std)

    def apply_view(self, x: Tensor) -> Tensor:
        """Read float images (B, H, W) as sequences (B, T, F) in this data's view."""
        if self.view == View.columns:
            return x.transpose(1, 2)  # (B, W, H)
        if self.view == View.pixels:
            return x.reshape(len(x), -1, 1)  # (B, H*W, 1)
        if self.view == View.permuted:
            return x.reshape(len(x), -1)[:, self.permutation].unsqueeze(-1)  # (B, H*W, 1)
        return x  # rows: (B, H, W)

    def batches(
        self, split: str, shuffle: bool = False, generator: torch.Generator | None = None, first_batch: int = 0
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield (sequences (B, T, F), labels (B,)) for one pass over a split, from batch `first_batch` on
        (a resumed epoch); the last batch may be short."""
        images, labels = getattr(self, f"{split}_x"), getattr(self, f"{split}_y")
        size = self.split_batch_size(split)
        order = torch.randperm(len(labels), generator=generator).to(labels.device) if shuffle else None
        for start in range(first_batch * size, len(labels), size):
            index = slice(start, start + size) if order is None else order[start : start + size]
            # A no-op when the data lives on the device; else one uint8 copy a batch, scaled after it lands.
            batch_images = images[index].to(self.device, non_blocking=True)
            yield self.as_sequences(batch_images), labels[index].to(self.device, non_blocking=True)


def _assemble(
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    class_names: tuple[str, ...],
    batching: BatchingSchema,
    split_seed: int,
    train_size: int | None = None,
) -> ImageData:
    """Images (N, H, W) uint8 and labels (N,) of the train and test splits, with `val_size` training images
    held out for validation and, with `train_size`, that many of the rest kept for training."""
    (train_x, train_y), (test_x, test_y) = train, test
    val_size = batching.val_size
    if val_size >= len(train_y):
        raise ConfigError("data.val_size", val_size, f"an integer below the training set size {len(train_y)}")
    # A fixed split seed keeps the validation set the same across training seeds.
    order = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(split_seed))
    val_index, train_index = order[:val_size], order[val_size:]
    if train_size is not None:
        if train_size > len(train_index):
            raise ConfigError(
                "data.train_size",
                train_size,
                f"null or at most {len(train_index)} (training images after data.val_size)",
            )
        train_index = train_index[:train_size]  # the order is drawn from split_seed: one subset for every run
    train_images = train_x[train_index]
    mean, std = 0.0, 1.0
    if batching.normalize:  # statistics of the training split only: the test set must not leak into training
        pixels = train_images.float() / 255.0
        mean, std = pixels.mean().item(), pixels.std().item()
    num_pixels = train_x.shape[1] * train_x.shape[2]
    permutation = torch.randperm(num_pixels, generator=torch.Generator().manual_seed(batching.permutation_seed))
    return ImageData(
        train_x=train_images,
        train_y=train_y[train_index],
        val_x=train_x[val_index],
        val_y=train_y[val_index],
        test_x=test_x,
        test_y=test_y,
        class_names=class_names,
        batch_size=batching.batch_size,
        eval_batch_size=batching.eval_batch_size,
        view=View(batching.view),
        permutation=permutation,
        mean=mean,
        std=std,
    )


def load_images(
    dataset: str, root: str, download: bool, split_seed: int, train_size: int | None = None, **batching: Any
) -> ImageData:
    """One of the MNIST family, read through torchvision; `batching` holds the keys of BatchingSchema
    (batch sizes, `val_size` images held out of training, view, normalisation); `train_size` images of
    the rest train (None: all)."""
    tensors = load_decoded(dataset, root, download)
    _check_splits(tensors, f"data.dataset={dataset} in data.root={root}")
    train, test = (tensors["train_x"], tensors["train_y"]), (tensors["test_x"], tensors["test_y"])
    return _assemble(train, test, tuple(tensors["classes"]), BatchingSchema(**batching), split_seed, train_size)


def _check_splits(tensors: dict, source: str) -> None:
    """Refuse data no classifier can learn from or be scored on: an empty split, a single class."""
    for split in ("train", "test"):
        if len(tensors[f"{split}_y"]) == 0:
            raise ValueError(f"{source}: the {split} split is empty; a run needs training and test examples")
    classes = tensors["train_y"].unique().tolist()
    if len(classes) < 2:
        raise ValueError(f"{source}: the training split holds only class {classes[0]}; a classifier needs two or more")


def make_synthetic(
    num_train: int,
    num_test: int,
    seq_len: int,
    input_size: int,
    num_classes: int,
    noise: float,
    seed: int,
    **batching: Any,
) -> ImageData:
    """SYNTHETIC: one random template per class plus Gaussian noise, quantised to uint8 "images";
    `batching` holds the keys of BatchingSchema."""
    generator = torch.Generator().manual_seed(seed)
    templates = torch.rand(num_classes, seq_len, input_size, generator=generator)

    def sample(count: int) -> tuple[Tensor, Tensor]:
        labels = torch.randint(num_classes, (count,), generator=generator)
        jitter = noise * torch.randn(count, seq_len, input_size, generator=generator)
        images = ((templates[labels] + jitter).clamp(0, 1) * 255).round().to(torch.uint8)
        return images, labels

    train, test = sample(num_train), sample(num_test)
    class_names = tuple(f"class {k}" for k in range(num_classes))
    return _assemble(train, test, class_names, BatchingSchema(**batching), split_seed=seed)
