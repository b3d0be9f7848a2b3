"""What people would rather look at than read: a grid of predictions (images, or series as lines or a heat map),
a confusion matrix and learning curves."""

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from src.runs import tags
from src.runs.atomic import write_atomically

GRID = 5  # a GRID x GRID panel of test images, as in the reference recipe
MAX_LINES = 8  # a series with more channels is drawn as a heat map: more lines than this are a tangle


def _figure(width: float, height: float):
    """A figure with its own Agg canvas: no pyplot, whose global state packed jobs' threads would share."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # imported on first use: start-up stays fast
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def prediction_grid(images: Tensor, predictions: Tensor, labels: Tensor, class_names: tuple[str, ...]):
    """GRID x GRID images (N, H, W) titled with the predicted and true class names ("Pred: Pullover",
    "Label: Coat", on two lines: long names fit); mistakes in red with a red frame.

    One axes showing a mosaic, not 25 subplots: it draws in a fifth of the time, and it is drawn
    at the end of every job of a sweep.
    """
    from matplotlib.patches import Rectangle

    count, height, width = images.shape
    gap, title = 2, 12  # pixels between tiles, and above each tile for its two-line title
    cell_h, cell_w = height + gap + title, width + gap
    mosaic = torch.full((GRID * cell_h, GRID * cell_w), float("nan"))
    figure = _figure(7, 10.1)
    axis = figure.subplots()
    for index, (image, predicted, label) in enumerate(
        zip(images.cpu().float(), predictions.tolist(), labels.tolist(), strict=True)
    ):
        top, left = (index // GRID) * cell_h + title, (index % GRID) * cell_w
        mosaic[top : top + height, left : left + width] = image
        wrong = predicted != label
        axis.text(
            left + width / 2,
            top - 1.5,
            f"Pred: {class_names[predicted]}\nLabel: {class_names[label]}",
            ha="center",
            va="bottom",
            fontsize=9,
            linespacing=1.1,
            color="red" if wrong else "black",
        )
        if wrong:
            axis.add_patch(
                Rectangle((left - 0.5, top - 0.5), width, height, fill=False, edgecolor="red", linewidth=2.5)
            )
    axis.imshow(mosaic.numpy(), cmap="gray")
    axis.set_axis_off()
    mistakes = int((predictions[:count] != labels[:count]).sum())
    figure.suptitle(f"{mistakes} of {count} wrong (red)")
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.95)
    return figure


def series_grid(series: list[Tensor], predicted: list[str], labels: list[str]):
    """Up to GRID x GRID series (T_i, C) titled "predicted / true" class names, mistakes in red: a line per
    channel, or a heat map of channels over steps when there are more than MAX_LINES channels."""
    count = len(series)
    rows = -(-count // GRID)
    figure = _figure(10, 0.6 + 1.7 * rows)
    axes = figure.subplots(rows, GRID, squeeze=False)
    for axis, values, guess, truth in zip(axes.flat, series, predicted, labels, strict=False):
        if values.shape[1] > MAX_LINES:
            axis.imshow(values.T.numpy(), aspect="auto", cmap="viridis", interpolation="nearest")  # (C, T)
        else:
            axis.plot(values.numpy(), linewidth=0.8)  # one line per channel
        wrong = guess != truth
        axis.set_title(f"{guess} / {truth}", fontsize=8, color="red" if wrong else "black")
        axis.tick_params(labelsize=6)
        for spine in axis.spines.values() if wrong else ():
            spine.set_edgecolor("red")
            spine.set_linewidth(2)
    for axis in axes.flat[count:]:
        axis.set_axis_off()
    mistakes = sum(guess != truth for guess, truth in zip(predicted, labels, strict=True))
    figure.suptitle(f"predicted / true class: {mistakes} of {count} wrong (red)", fontsize=10)
    figure.tight_layout()
    return figure


def confusion_matrix(predictions: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """counts[true, predicted] over a split."""
    flat = labels.cpu() * num_classes + predictions.cpu()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def confusion_figure(counts: Tensor, class_names: tuple[str, ...]):
    """The confusion matrix as a heat map with counts, rows true classes, columns predicted ones, named.

    Sized to TensorBoard's default image card (about 340 pixels wide), so it is read there unscaled.
    """
    size = len(class_names)
    side = max(3.2, 0.9 + 0.34 * size)  # inches at 80 dpi: 10 classes give 344 pixels
    figure = _figure(side + 0.2, side)
    axis = figure.subplots()
    axis.imshow(counts.numpy(), cmap="Blues")
    for true in range(size):
        for predicted in range(size):
            value = int(counts[true, predicted])
            color = "white" if value > counts.max() / 2 else "black"
            axis.text(predicted, true, str(value), ha="center", va="center", fontsize=7, color=color)
    axis.set_xticks(range(size), class_names, rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
    axis.set_yticks(range(size), class_names, fontsize=8)
    accuracy = counts.diag().sum().item() / max(counts.sum().item(), 1)
    axis.set_xlabel("predicted", fontsize=8)
    axis.set_ylabel("true", fontsize=8)
    axis.set_title(f"test accuracy {accuracy:.4f}", fontsize=9)
    figure.tight_layout(pad=0.3)
    return figure


def render(figure, path: Path, dpi: int = 80) -> np.ndarray:
    """Draw the figure once, write it to path as PNG, and return its pixels (H, W, 3) for TensorBoard."""
    figure.set_dpi(dpi)
    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    write_atomically(path, lambda handle: Image.fromarray(pixels).save(handle, format="PNG"))
    return pixels


def learning_curves(history: list[dict[str, float]]):
    """Loss and accuracy of each split against the epoch (epoch 0: before training), side by side."""
    from matplotlib.ticker import MaxNLocator

    figure = _figure(9, 3.4)
    panels = (
        ("cross-entropy", (tags.TRAIN_LOSS, tags.VAL_LOSS, tags.TEST_LOSS)),
        ("accuracy", (tags.TRAIN_ACC, tags.VAL_ACC, tags.TEST_ACC)),
    )
    for axis, (label, split_tags) in zip(figure.subplots(1, 2), panels, strict=True):
        for tag, style in zip(split_tags, ("-o", "-s", "--x"), strict=True):  # x: a test set scored once shows
            points = [(row[tags.EPOCH], row[tag]) for row in history if tag in row]
            if points:
                axis.plot(*zip(*points, strict=True), style, label=tag.split("/")[0], markersize=4)
        axis.set(xlabel="epoch", ylabel=label)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    return figure


def png(figure, dpi: int = 80) -> bytes:
    """The figure as PNG bytes, for a notebook to show inline."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
