"""A toy model family added as docs/extending.md says: a module (this file), a schema, and a YAML file
(toy_family/model/toy.yaml, on Hydra's search path in the test that registers the schema)."""

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from src.config.errors import ConfigError
from src.data.padded import Padded
from src.models.pooling import masked_mean


@dataclass
class ToySchema:
    _target_: str = "toy_family.MeanClassifier"
    width: int = 8


class MeanClassifier(nn.Module):
    """A linear layer over each step, averaged over the valid steps: the smallest model of the contract."""

    def __init__(self, input_size: int, num_classes: int, seq_len: int | None, width: int = 8) -> None:
        super().__init__()
        if width < 1:
            raise ConfigError("model.width", width, "an integer >= 1")
        self.step = nn.Linear(input_size, width)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: Tensor | Padded) -> Tensor:
        values, lengths = (x.values, x.lengths) if isinstance(x, Padded) else (x, None)
        return self.fc(masked_mean(torch.relu(self.step(values)), lengths))  # (B, classes)
