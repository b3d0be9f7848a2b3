"""From loaded series to SeriesData: labels to class indices, the validation split, normalisation,
patches and strides. Shared by every source of series (src/data/array_files.py, src/data/uea.py)."""

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from src.config.choices import Normalization
from src.config.errors import ConfigError
from src.config.schema import SeriesSchema
from src.data.image_files import DataError
from src.data.padded import valid_steps
from src.data.series import SeriesData


@dataclass(frozen=True)
class Split:
    """One split as loaded: values (N, T, F) float32 zero-padded, lengths (N,) int64, labels (N,) as read."""

    x: Tensor
    lengths: Tensor
    labels: np.ndarray

    def take(self, index: Tensor) -> "Split":
        return Split(self.x[index], self.lengths[index], self.labels[index.numpy()])


def pad(series: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Series (T_i, F) as values (N, T, F), zero past each length, and lengths (N,)."""
    lengths = torch.tensor([len(s) for s in series], dtype=torch.int64)
    return torch.nn.utils.rnn.pad_sequence(series, batch_first=True), lengths


def class_names_of(*labels: np.ndarray) -> tuple[str, ...]:
    """Sorted distinct labels as text: numbers in numeric order (2 before 10), then the rest."""
    distinct = {str(v) for part in labels for v in part.tolist()}
    return tuple(
        sorted(distinct, key=lambda name: (not _is_number(name), float(name) if _is_number(name) else 0, name))
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def encode(labels: np.ndarray, class_names: tuple[str, ...], source: str) -> Tensor:
    """Labels as class indices (N,) int64; a label outside class_names is an error naming the source."""
    index = {name: k for k, name in enumerate(class_names)}
    texts = [str(v) for v in labels.tolist()]
    unknown = sorted(set(texts) - set(index))
    if unknown:
        raise DataError(f"{source}: labels {unknown[:5]} are not among the training classes {list(class_names)[:10]}")
    return torch.tensor([index[t] for t in texts], dtype=torch.int64)


def holdout(labels: np.ndarray, size: float, key: str, seed: int, fold: int = 0) -> tuple[Tensor, Tensor]:
    """(kept, held out) indices: `size` series (a count, or a fraction when below 1) held out, stratified by
    class so every class keeps its share; a fixed seed keeps the split the same across training seeds.
    `fold` picks which of the len // count disjoint parts is held out: together they are k-fold
    cross-validation, each part stratified."""
    count = round(size * len(labels)) if size < 1 else int(size)
    if size >= 1 and size != int(size):
        raise ConfigError(key, size, "a count (a whole number) or a fraction below 1")
    if not 0 < count < len(labels):
        raise ConfigError(key, size, f"a count or fraction leaving both parts non-empty ({len(labels)} series)")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    _, codes = np.unique(labels[order.numpy()], return_inverse=True)
    # Each series' rank within its class, as a fraction of the class: taking the lowest ranks first takes
    # every class in proportion.
    rank = np.zeros(len(labels))
    for code in np.unique(codes):
        members = np.flatnonzero(codes == code)
        rank[members] = (np.arange(len(members)) + 0.5) / len(members)
    by_rank = order[torch.from_numpy(np.argsort(rank, kind="stable"))]
    folds = len(labels) // count
    if not 0 <= fold < folds:
        raise ConfigError("data.fold", fold, f"0 to {folds - 1}: {folds} validation parts of {count} series")
    # Consecutive ranks interleave the classes in proportion: any run of `count` of them is stratified.
    held = torch.zeros(len(labels), dtype=torch.bool)
    held[by_rank[fold * count : (fold + 1) * count]] = True
    return held.logical_not().nonzero().squeeze(1), held.nonzero().squeeze(1)


def normalize(splits: dict[str, Split], how: Normalization) -> dict[str, Split]:
    """Scale every split's valid steps; `channel` uses the training split's statistics only."""
    if how == Normalization.none:
        return splits
    if how == Normalization.channel:
        train = splits["train"]
        mask = valid_steps(train.lengths, train.x.shape[1], train.x.device)  # (N, T)
        steps = train.x[mask]  # (valid steps, F)
        mean, std = steps.mean(dim=0), steps.std(dim=0).clamp(min=1e-8)
        return {name: _scaled(split, mean, std) for name, split in splits.items()}
    scaled = {}
    for name, split in splits.items():
        mask = valid_steps(split.lengths, split.x.shape[1], split.x.device).unsqueeze(-1)  # (N, T, 1)
        count = split.lengths.view(-1, 1, 1).float()
        mean = (split.x * mask).sum(dim=1, keepdim=True) / count  # (N, 1, F)
        var = (((split.x - mean) * mask) ** 2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)
        scaled[name] = _scaled(split, mean, var.sqrt().clamp(min=1e-8))
    return scaled


def _scaled(split: Split, mean: Tensor, std: Tensor) -> Split:
    mask = valid_steps(split.lengths, split.x.shape[1], split.x.device).unsqueeze(-1)  # (N, T, 1)
    return Split(((split.x - mean) / std) * mask, split.lengths, split.labels)  # padding stays zero


def reshape_steps(split: Split, patch: int, stride: int) -> Split:
    """Every `stride`-th step, then `patch` consecutive steps as one step of patch * F features."""
    x, lengths = split.x[:, ::stride], (split.lengths + stride - 1) // stride  # (N, ceil(T/stride), F)
    extra = -x.shape[1] % patch
    x = torch.nn.functional.pad(x, (0, 0, 0, extra))  # (N, T', F) with T' a multiple of the patch
    x = x.reshape(len(x), x.shape[1] // patch, patch * x.shape[2])  # (N, T'/patch, patch*F)
    return Split(x.contiguous(), (lengths + patch - 1) // patch, split.labels)


def assemble(
    train: Split, test: Split, class_names: tuple[str, ...], source: str, settings: SeriesSchema
) -> SeriesData:
    """Hold out the validation part of `train`, normalise, reshape the steps and check what is left."""
    if len(class_names) < 2:
        raise DataError(
            f"{source}: {len(class_names)} class ({', '.join(class_names)}): a classifier needs two or more"
        )
    if settings.refit:  # the whole training split, after the choices were made on validation parts
        kept, held = torch.arange(len(train.labels)), torch.arange(0)
    else:
        kept, held = holdout(train.labels, settings.val_size, "data.val_size", settings.split_seed, settings.fold)
    splits = {"train": train.take(kept), "val": train.take(held), "test": test}
    splits = normalize(splits, Normalization(settings.normalize))
    splits = {name: reshape_steps(split, settings.patch, settings.stride) for name, split in splits.items()}
    parts = {}
    for name, split in splits.items():
        parts |= {
            f"{name}_x": split.x,
            f"{name}_lengths": split.lengths,
            f"{name}_y": encode(split.labels, class_names, source),
        }
    variable = any(bool((s.lengths != s.x.shape[1]).any()) for s in splits.values())
    # Splits padded to different lengths are one set of sequences of different lengths too.
    variable = variable or len({s.x.shape[1] for s in splits.values()}) > 1
    return SeriesData(
        **parts,
        class_names=class_names,
        batch_size=settings.batch_size,
        eval_batch_size=settings.eval_batch_size,
        variable_lengths=variable,
        bucket=settings.bucket,
        channels=train.x.shape[2],
        view="series" if settings.patch == 1 else f"series in patches of {settings.patch}",
    )
