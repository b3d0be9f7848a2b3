"""What people would rather look at than read: a grid of predictions and a confusion matrix."""

import torch
from torch import Tensor

GRID = 5  # a GRID x GRID panel of test images, as in the reference recipe


def _pyplot():
    import matplotlib  # imported on first use: start-up stays fast for runs that never draw

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


def prediction_grid(images: Tensor, predictions: Tensor, labels: Tensor):
    """GRID x GRID images (N, H, W) titled "Pred: p / Label: y"; mistakes in red with a red frame."""
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(GRID, GRID, figsize=(8, 8.6))
    for axis, image, predicted, label in zip(axes.flat, images.cpu(), predictions.tolist(), labels.tolist()):
        wrong = predicted != label
        axis.imshow(image.numpy(), cmap="gray")
        axis.set_title(f"Pred: {predicted} / Label: {label}", fontsize=9, color="red" if wrong else "black")
        axis.set_xticks([])
        axis.set_yticks([])
        for spine in axis.spines.values():
            spine.set(color="red" if wrong else "none", linewidth=2.5)
    mistakes = int((predictions != labels).sum())
    figure.suptitle(f"{mistakes} of {len(labels)} wrong (red)")
    figure.tight_layout()
    return figure


def confusion_matrix(predictions: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """counts[true, predicted] over a split."""
    flat = labels.cpu() * num_classes + predictions.cpu()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def confusion_figure(counts: Tensor, class_names: tuple[str, ...]):
    """The confusion matrix as a heat map with counts, rows true classes, columns predicted ones."""
    pyplot = _pyplot()
    size = len(class_names)
    figure, axis = pyplot.subplots(figsize=(1.0 + 0.6 * size, 0.8 + 0.6 * size))
    axis.imshow(counts.numpy(), cmap="Blues")
    for true in range(size):
        for predicted in range(size):
            value = int(counts[true, predicted])
            color = "white" if value > counts.max() / 2 else "black"
            axis.text(predicted, true, str(value), ha="center", va="center", fontsize=7, color=color)
    axis.set_xticks(range(size), class_names, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(size), class_names, fontsize=8)
    accuracy = counts.diag().sum().item() / max(counts.sum().item(), 1)
    axis.set(xlabel="predicted", ylabel="true", title=f"test accuracy {accuracy:.4f}")
    figure.tight_layout()
    return figure
