"""What a job tells whoever listens to its epochs (a study's trial, say), and how a listener stops it.

Torch-free, and nothing here knows of sweeps: the study's trial (src/sweeps/trial_report.py) is one listener.
"""

from typing import Protocol


class Pruned(Exception):
    """A listener stopped the run after an epoch (a study's pruner); the epoch's checkpoint is on disk."""

    def __init__(self, epoch: int, value: float) -> None:
        super().__init__(f"pruned after epoch {epoch} ({value:.4g})")
        self.epoch, self.value = epoch, value


class EpochListener(Protocol):
    """Told each epoch's metrics as the epoch ends (and whether it is the run's last); may raise Pruned."""

    def resumed(self, history: list[dict[str, float]]) -> None:
        """A resumed run's epochs before this start."""

    def epoch_end(self, epoch: int, metrics: dict[str, float], last: bool) -> None:
        """The epoch just ended; raise Pruned to stop the run here."""
