"""A batch of sequences of different lengths: zero-padded values and each sequence's own length."""

from typing import NamedTuple

import torch
from torch import Tensor


class Padded(NamedTuple):
    """values (B, T, F) with zeros past each sequence's end; lengths (B,) int64 on the CPU.

    The lengths stay on the CPU because packing reads them there: keeping them there spares a
    device-to-host copy, and a wait for the device, at every batch.
    """

    values: Tensor
    lengths: Tensor

    @property
    def device(self) -> torch.device:
        return self.values.device

    def to(self, device: torch.device, non_blocking: bool = False) -> "Padded":
        return Padded(self.values.to(device, non_blocking=non_blocking), self.lengths)


def valid_steps(lengths: Tensor, steps: int, device: torch.device) -> Tensor:
    """mask (B, T): True at the steps each sequence really has, False on its padding."""
    return torch.arange(steps, device=device) < lengths.to(device).unsqueeze(1)  # (B, T)
