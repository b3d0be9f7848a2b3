"""Scoring a model without training it: loss and accuracy, predictions, and their pictures."""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from src.data.images import ImageData
from src.data.series import SeriesData
from src.runs import pictures
from src.training.precision import autocast


@torch.inference_mode()
def evaluate(
    model: nn.Module, data: ImageData | SeriesData, split: str, precision: str = "fp32"
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of the model on a split, in eval mode."""
    model.eval()
    loss_sum = torch.zeros((), device=data.device)
    correct = torch.zeros((), device=data.device, dtype=torch.long)
    for x, y in data.batches(split):
        with autocast(x.device, precision):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(dim=1) == y).sum()
    count = len(getattr(data, f"{split}_y"))
    return loss_sum.item() / count, correct.item() / count


@torch.inference_mode()
def predict(model: nn.Module, data: ImageData | SeriesData, split: str) -> torch.Tensor:
    """The predicted class of every sample of a split, in eval mode."""
    model.eval()
    return torch.cat([model(x).argmax(dim=1) for x, _ in data.batches(split)])


def draw_predictions(model: nn.Module, data: ImageData | SeriesData, run_dir: Path) -> np.ndarray:
    """predictions.png: the first 25 test images or series (the same in every run of a dataset) with the
    names of their predicted and true classes; returns its pixels (H, W, 3)."""
    count = pictures.GRID * pictures.GRID
    if isinstance(data, SeriesData):
        return draw_series_predictions(model, data, run_dir, count)
    images, labels = data.test_x[:count].to(data.device), data.test_y[:count]
    with torch.inference_mode():
        model.eval()
        predicted = model(data.as_sequences(images)).argmax(dim=1)
    grid = pictures.prediction_grid(images, predicted.cpu(), labels.cpu(), data.class_names)
    return pictures.render(grid, run_dir / "predictions.png")


@torch.inference_mode()
def draw_series_predictions(model: nn.Module, data: SeriesData, run_dir: Path, count: int) -> np.ndarray:
    """predictions.png for series: `count` test series drawn, titled with class names."""
    drawn, x, labels = data.series("test", count)
    model.eval()
    names = [data.class_names[k] for k in model(x).argmax(dim=1).tolist()]
    truths = [data.class_names[k] for k in labels.tolist()]
    return pictures.render(pictures.series_grid(drawn, names, truths), run_dir / "predictions.png")


def draw_confusion(model: nn.Module, data: ImageData | SeriesData, run_dir: Path) -> np.ndarray:
    """confusion.png: the confusion matrix of the whole test set; returns its pixels (H, W, 3)."""
    counts = pictures.confusion_matrix(predict(model, data, "test"), data.test_y, data.num_classes)
    return pictures.render(pictures.confusion_figure(counts, data.class_names), run_dir / "confusion.png")
