"""A job's own random stream for what draws from torch's global generators (dropout), so that its
result does not depend on the jobs running beside it in the same process.

torch's dropout (nn.Dropout, and the RNN's dropout between layers) takes no generator: it draws from the
process-wide CPU generator and the device's CUDA generator. Jobs of a packed sweep are threads of one
process, so their draws would interleave in whatever order the threads happen to run. Each job keeps
its own state of those generators, seeded from the run's seed, and swaps it in, under one lock, around
the work that draws. A job alone and the same job packed with others draw the same numbers.
"""

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch
from torch import nn

# Held by whatever sets or draws from the global generators for one job: seeding and initialising a model
# (src/training/building.py), or one job's step with its own states swapped in.
GLOBAL_GENERATORS = threading.Lock()
# The stream's seed is the run's seed moved by this constant: apart from the one the initialisation drew.
STREAM_OFFSET = 0x5EED
Result = TypeVar("Result")


class OwnRandomness:
    """One job's states of the global CPU and (on CUDA) device generators."""

    def __init__(self, seed: int, device: torch.device) -> None:
        """States seeded from the run's seed, for the CPU and, on CUDA, for the job's device."""
        self.device = device if device.type == "cuda" else None
        self.cpu = torch.Generator().manual_seed(seed + STREAM_OFFSET).get_state()
        self.cuda = None
        if self.device is not None:
            self.cuda = torch.Generator(self.device).manual_seed(seed + STREAM_OFFSET).get_state()

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """While the block runs the global generators are this job's, and only this job's."""
        with GLOBAL_GENERATORS:
            outer_cpu = torch.get_rng_state()
            outer_cuda = torch.cuda.get_rng_state(self.device) if self.device is not None else None
            torch.set_rng_state(self.cpu)
            if self.device is not None:
                torch.cuda.set_rng_state(self.cuda, self.device)
            try:
                yield
            finally:
                self.cpu = torch.get_rng_state()
                torch.set_rng_state(outer_cpu)
                if self.device is not None:
                    self.cuda = torch.cuda.get_rng_state(self.device)
                    torch.cuda.set_rng_state(outer_cuda, self.device)

    def around(self, work: Callable[..., Result]) -> Callable[..., Result]:
        """`work` with this job's generators in place while it runs."""

        def drawing(*args: object, **kwargs: object) -> Result:
            with self.active():
                return work(*args, **kwargs)

        return drawing


def draws_at_random(model: nn.Module) -> bool:
    """Whether training the model draws random numbers (dropout anywhere in it)."""
    return any(
        (isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0)
        or (isinstance(module, nn.RNNBase) and module.dropout > 0)
        for module in model.modules()
    )
