"""The optimizer step on one batch: eager, or captured once in a CUDA graph and replayed.

A small recurrent model's eager step is mostly Python launching hundreds of tiny kernels; a CUDA
graph replays the whole forward, backward, clipping and Adam update with one launch.
"""

import logging
import threading
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from src.config.choices import GraphMode
from src.config.errors import ConfigError
from src.training.precision import autocast
from src.training.schedules import Schedule

log = logging.getLogger(__name__)

Step = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]  # (x, y) -> (loss, logits), both detached
WARMUP_STEPS = 3  # eager steps on a side stream before capture, as PyTorch's whole-network recipe does
# Packed jobs share one process: capture one graph at a time (PyTorch's CUDA-graph notes).
CAPTURE_LOCK = threading.Lock()


def train_step(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    optimizer: torch.optim.Optimizer,
    grad_clip_norm: float | None,
    precision: str = "fp32",
    scaler: torch.amp.GradScaler | None = None,
    set_to_none: bool = True,
) -> tuple[Tensor, Tensor]:
    """One optimizer step on a batch; returns the (detached) loss and logits."""
    with autocast(x.device, precision):
        logits = model(x)
        loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=set_to_none)
    if scaler is None:
        loss.backward()
    else:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    if grad_clip_norm is not None:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip_norm)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()
    return loss.detach(), logits.detach()


def graph_blocker(
    device: torch.device,
    precision: str,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule | None,
    variable_lengths: bool = False,
) -> str | None:
    """Why this run cannot replay its step as a CUDA graph, or None when it can."""
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device and this run is on {device}"
    if variable_lengths:  # a graph replays fixed shapes; packed batches differ in shape every step
        return "the sequences differ in length, so every batch has a shape of its own"
    if precision == "fp16-mixed":
        return "fp16-mixed's loss scaler reads the gradients on the host every step"
    if not isinstance(optimizer, torch.optim.Adam):  # AdamW is an Adam
        return "the graph step needs Adam or AdamW, whose learning rate can live on the GPU"
    return schedule.host_bound_reason() if schedule is not None else None


def use_cuda_graph(
    setting: GraphMode | str,
    device: torch.device,
    precision: str,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule | None,
    variable_lengths: bool = False,
) -> bool:
    """Resolve trainer.cuda_graph for this run (auto: where possible); an impossible `always` is an error."""
    setting = GraphMode(setting)
    reason = graph_blocker(device, precision, optimizer, schedule, variable_lengths)
    if setting == GraphMode.always and reason:
        raise ConfigError("trainer.cuda_graph", setting.value, f"never or auto here: {reason}")
    if setting == GraphMode.auto and reason and device.type == "cuda":
        log.info("eager steps: %s", reason)
    return setting != GraphMode.never and reason is None


def make_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    grad_clip_norm: float | None,
    precision: str,
    batch_size: int,
    cuda_graph: bool,
    scaler: torch.amp.GradScaler | None = None,
) -> Step:
    """The step the loop calls for every batch; `scaler`: the run's fp16 loss scaler (precision.make_scaler),
    made by the caller, which checkpoints its scale with the run."""
    if precision == "fp16-mixed" and scaler is None:
        raise ValueError("an fp16-mixed step needs its loss scaler: fp16 gradients underflow without one")
    if cuda_graph:
        return GraphedStep(model, optimizer, grad_clip_norm, precision, batch_size)
    return partial(
        train_step, model, optimizer=optimizer, grad_clip_norm=grad_clip_norm, precision=precision, scaler=scaler
    )


def make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Keep Adam's learning rate and step count on the GPU, so a replayed graph reads their current values
    (schedulers fill the lr tensor in place) instead of the numbers baked in at capture."""
    for group in optimizer.param_groups:
        group["capturable"] = True
        group["lr"] = torch.tensor(float(group["lr"]), device=device)
    for state in optimizer.state.values():  # restored from a checkpoint: the step count sits on the CPU
        if "step" in state:
            state["step"] = state["step"].to(device=device, dtype=torch.float32)


class GraphedStep:
    """train_step, captured for full batches after a few eager ones, then replayed.

    The returned loss and logits are the graph's output buffers: read them before the next call.
    A batch of another size (an epoch's short last batch) runs eagerly on the same parameters and
    gradient buffers, so the results are those of the eager loop.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        grad_clip_norm: float | None,
        precision: str,
        batch_size: int,
    ) -> None:
        self.model, self.optimizer, self.batch_size = model, optimizer, batch_size
        self.eager = partial(train_step, model, optimizer=optimizer, grad_clip_norm=grad_clip_norm, precision=precision)
        self.device = next(model.parameters()).device
        self.graph: torch.cuda.CUDAGraph | None = None
        self.warmup_left = WARMUP_STEPS
        make_capturable(optimizer, self.device)

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        if len(y) != self.batch_size:
            # Zeroing in place keeps the gradient tensors the graph writes into.
            return self.eager(x, y, set_to_none=self.graph is None)
        if self.graph is None and self.warmup_left:
            self.warmup_left -= 1
            return self._on_side_stream(x, y)
        if self.graph is None:
            self._capture(x, y)
        self.static_x.copy_(x)
        self.static_y.copy_(y)
        self.graph.replay()
        return self.static_loss, self.static_logits

    def _on_side_stream(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        # cuBLAS/cuDNN set themselves up on first use; that must happen outside the capture.
        main, side = torch.cuda.current_stream(self.device), torch.cuda.Stream(self.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):
            result = self.eager(x, y)
        main.wait_stream(side)
        return result

    def _capture(self, x: Tensor, y: Tensor) -> None:
        self.static_x, self.static_y = x.clone(), y.clone()
        self.graph = torch.cuda.CUDAGraph()
        self.optimizer.zero_grad(
            set_to_none=True
        )  # backward in the capture allocates the gradients in the graph's pool
        # Each graph gets a private memory pool (pool=None): graphs of packed jobs replay concurrently.
        with CAPTURE_LOCK, torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
            self.static_loss, self.static_logits = self.eager(self.static_x, self.static_y)
        # The eager warm-up's activations stay cached outside the graph's pool; parallel jobs on one GPU
        # (a joblib sweep of 784-step sequences) need that memory back.
        torch.cuda.empty_cache()
        log.info("training step captured in a CUDA graph (batch %d)", self.batch_size)
