"""Scoring a model without training it: loss and accuracy, predictions, and their pictures."""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from src import pictures
from src.data import SequenceData

# trainer.precision -> the autocast dtype (None: plain fp32). fp16 also needs a GradScaler (CUDA only).
AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16-mixed": torch.float16}


def autocast(device: torch.device, precision: str) -> torch.autocast:
    dtype = AUTOCAST_DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)



@torch.inference_mode()
def evaluate(model: nn.Module, data: SequenceData, split: str, precision: str = "fp32") -> tuple[float, float]:
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
def predict(model: nn.Module, data: SequenceData, split: str) -> torch.Tensor:
    """The predicted class of every sample of a split, in eval mode."""
    model.eval()
    return torch.cat([model(x).argmax(dim=1) for x, _ in data.batches(split)])


def draw_predictions(model: nn.Module, data: SequenceData, run_dir: Path):
    """predictions.png: the first 25 test images (the same every epoch) with predicted and true classes."""
    count = pictures.GRID * pictures.GRID
    images, labels = data.test_x[:count].to(data.device), data.test_y[:count]
    with torch.inference_mode():
        model.eval()
        predicted = model(data.as_sequences(images)).argmax(dim=1)
    figure = pictures.prediction_grid(images, predicted.cpu(), labels.cpu())
    figure.savefig(run_dir / "predictions.png", dpi=80)
    return figure


def draw_confusion(model: nn.Module, data: SequenceData, run_dir: Path):
    """confusion.png: the confusion matrix of the whole test set."""
    counts = pictures.confusion_matrix(predict(model, data, "test"), data.test_y, data.num_classes)
    figure = pictures.confusion_figure(counts, data.class_names)
    figure.savefig(run_dir / "confusion.png", dpi=80)
    return figure
