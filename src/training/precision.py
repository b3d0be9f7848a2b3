"""Numeric precision of a run: the autocast context, the fp16 loss scaler, and the check a CPU needs."""

import torch
from torch import nn

from src.config.choices import Precision
from src.config.errors import ConfigError

# trainer.precision -> the autocast dtype (None: plain fp32). fp16 also needs a GradScaler (CUDA only).
AUTOCAST_DTYPES = {Precision.fp32: None, Precision.bf16: torch.bfloat16, Precision["fp16-mixed"]: torch.float16}


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """Autocast to the precision's dtype on the device (disabled for fp32)."""
    dtype = AUTOCAST_DTYPES[Precision(precision)]
    # No cast cache: a CUDA graph capture must not keep casts made outside it (PyTorch's graph notes).
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None, cache_enabled=False)


def make_scaler(precision: str) -> torch.amp.GradScaler | None:
    """fp16 gradients underflow without loss scaling; the other precisions need none."""
    return torch.amp.GradScaler("cuda") if precision == "fp16-mixed" else None


def check_precision(model: nn.Module, seq_len: int, input_size: int, device: torch.device, precision: str) -> None:
    """Refuse fp16-mixed off CUDA, and bf16 on a CPU whose oneDNN lacks the model's bf16 kernels (LSTM
    without AVX-512 bf16), before training starts rather than at its first batch."""
    if precision == "fp16-mixed" and device.type != "cuda":
        raise ConfigError(
            "trainer.precision", "fp16-mixed", f"fp32 or bf16 on {device}: fp16-mixed needs a CUDA device"
        )
    if precision != "bf16" or device.type != "cpu":
        return
    try:
        with torch.no_grad(), autocast(device, precision):
            model(torch.zeros(1, seq_len, input_size, device=device))
    except RuntimeError as error:
        # Not `from error`: one_line appends a cause's text, and this message already carries its first line.
        raise ConfigError(  # noqa: B904
            "trainer.precision",
            precision,
            f"fp32 on this CPU ({torch.backends.cpu.get_cpu_capability()}): {str(error).splitlines()[0]}",
        )
