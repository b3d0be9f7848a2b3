"""Scoring a model without training it: loss and accuracy, predictions, and their pictures."""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.data.batched import BatchedData
from src.data.series import SeriesData
from src.runs import pictures
from src.training.precision import autocast


@torch.inference_mode()
def score(model: nn.Module, data: BatchedData, split: str, precision: str = "fp32") -> tuple[float, float, Tensor]:
    """Mean cross-entropy, accuracy and the predicted class of every sample (in the split's order) of the
    model on a split, in one pass in eval mode."""
    model.eval()
    loss_sum = torch.zeros((), device=data.device)
    predicted = []
    for x, y in data.batches(split):
        with autocast(x.device, precision):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        predicted.append(logits.argmax(dim=1))
    labels = getattr(data, f"{split}_y")
    classes = torch.cat(predicted).cpu()
    return loss_sum.item() / len(labels), (classes == labels.cpu()).sum().item() / len(labels), classes


def evaluate(model: nn.Module, data: BatchedData, split: str, precision: str = "fp32") -> tuple[float, float]:
    """Mean cross-entropy and accuracy of the model on a split, in eval mode."""
    loss, accuracy, _ = score(model, data, split, precision)
    return loss, accuracy


def draw_predictions(model: nn.Module, data: BatchedData, run_dir: Path, predicted: Tensor | None = None) -> np.ndarray:
    """predictions.png: the first 25 test images or series (the same in every run of a dataset) with the
    names of their predicted and true classes, taken from `predicted` (the whole test set's, in order)
    when given; returns its pixels (H, W, 3)."""
    count = pictures.GRID * pictures.GRID
    if isinstance(data, SeriesData):
        return draw_series_predictions(model, data, run_dir, count, predicted)
    images, labels = data.test_x[:count].to(data.device), data.test_y[:count]
    if predicted is None:
        with torch.inference_mode():
            model.eval()
            predicted = model(data.as_sequences(images)).argmax(dim=1)
    grid = pictures.prediction_grid(images, predicted[:count].cpu(), labels.cpu(), data.class_names)
    return pictures.render(grid, run_dir / "predictions.png")


@torch.inference_mode()
def draw_series_predictions(
    model: nn.Module, data: SeriesData, run_dir: Path, count: int, predicted: Tensor | None = None
) -> np.ndarray:
    """predictions.png for series: `count` test series drawn, titled with class names."""
    drawn, x, labels = data.series("test", count)
    if predicted is None:
        model.eval()
        predicted = model(x).argmax(dim=1)
    else:
        predicted = predicted[data.spread("test", count)]
    names = [data.class_names[k] for k in predicted.tolist()]
    truths = [data.class_names[k] for k in labels.tolist()]
    return pictures.render(pictures.series_grid(drawn, names, truths), run_dir / "predictions.png")


def draw_confusion(model: nn.Module, data: BatchedData, run_dir: Path, predicted: Tensor | None = None) -> np.ndarray:
    """confusion.png: the confusion matrix of the whole test set, from `predicted` when given; returns its
    pixels (H, W, 3)."""
    predicted = score(model, data, "test")[2] if predicted is None else predicted
    counts = pictures.confusion_matrix(predicted, data.test_y, data.num_classes)
    return pictures.render(pictures.confusion_figure(counts, data.class_names), run_dir / "confusion.png")
