"""Is the framework's step the eager step? The losses of N steps of each from one seeded start, compared.

With exact kernels (deterministic cuDNN, no TF32) an eager loop repeats itself bit for bit, so any
difference is the step's own: a CUDA graph replay against the eager step with the same capturable Adam
must give 0; against plain eager Adam, capturable Adam's float32 bias correction shows up.
"""

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from src.data.images import ImageData
from src.training.steps import GraphedStep, Step

FreshStep = Callable[[], tuple[nn.Module, Step]]  # a model from the seeded start, and the step that trains it


@contextmanager
def exact_kernels() -> Iterator[None]:
    """Deterministic cuDNN and no TF32 while comparing steps: otherwise two runs of the same eager loop
    drift apart too, and the check would measure the kernels' rounding instead of the step."""
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = (
        True,
        False,
        False,
    )
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = (
            saved
        )


def step_losses(fresh: FreshStep, data: ImageData, steps: int, seed: int) -> tuple[torch.Tensor, bool]:
    """The losses of `steps` steps from a fresh start over seeded shuffles, and whether the step was a CUDA graph."""
    model, step = fresh()
    generator = torch.Generator().manual_seed(seed)
    batches = itertools.chain.from_iterable(data.batches("train", True, generator) for _ in itertools.count())
    model.train()
    # clone: a graph step's loss is its output buffer, overwritten by the next replay
    losses = torch.stack([step(x, y)[0].clone() for x, y in itertools.islice(batches, steps)])
    return losses, isinstance(step, GraphedStep)


def check_step(steps_by_kind: dict[str, FreshStep], data: ImageData, steps: int, seed: int) -> dict:
    """The `framework` step against every other kind (`eager`, and `eager_capturable` where the framework's
    step is a graph) under exact kernels: the largest absolute and relative loss differences."""
    with exact_kernels():
        framework, graphed = step_losses(steps_by_kind["framework"], data, steps, seed)
        others = {
            kind: step_losses(fresh, data, steps, seed)[0]
            for kind, fresh in steps_by_kind.items()
            if kind != "framework" and (graphed or kind != "eager_capturable")
        }
    result = {
        "steps": steps,
        "framework_step": "cuda graph" if graphed else "eager",
        "last_eager_loss": others["eager"][-1].item(),
    }
    for kind, losses in others.items():
        difference = (framework - losses).abs()
        result[f"max_abs_loss_diff_to_{kind}"] = difference.max().item()
        result[f"max_rel_loss_diff_to_{kind}"] = (difference / losses.abs()).max().item()
    return result
