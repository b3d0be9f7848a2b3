"""Shared helpers: tiny IDX files written by the tests, and the real CLI in a subprocess."""

import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def easy_images(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """An easy 10-class task: class k is a bright bar on row 2k+4 of a noisy 28x28 image."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(10, (count,), generator=generator)
    images = torch.randint(0, 60, (count, 28, 28), generator=generator, dtype=torch.uint8)
    images[torch.arange(count), 2 * labels + 4, 3:25] = 230
    return images, labels


def idx_bytes(tensor: torch.Tensor) -> bytes:
    """IDX encoding of a uint8 tensor: magic (0, 0, 0x08, ndim), big-endian sizes, then the bytes."""
    header = struct.pack(">I", 0x0800 + tensor.dim()) + b"".join(struct.pack(">I", s) for s in tensor.shape)
    return header + tensor.to(torch.uint8).numpy().tobytes()


def write_idx(folder: Path, train: int = 600, test: int = 200, gz: bool = True) -> Path:
    """Write the four files of an MNIST-like dataset into folder (gzipped, as mirrors and Debian ship them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, count, seed in (("train", train, 1), ("test", test, 2)):
        images, labels = easy_images(count, seed)
        for name, tensor in zip(IDX_NAMES[split], (images, labels)):
            if gz:
                with gzip.open(folder / f"{name}.gz", "wb") as handle:
                    handle.write(idx_bytes(tensor))
            else:
                (folder / name).write_bytes(idx_bytes(tensor))
    return folder


@pytest.fixture
def idx_root(tmp_path: Path) -> Path:
    """A data root holding a tiny gzipped 'mnist' directly under it, as a user might drop it there."""
    return write_idx(tmp_path / "data")


def run_cli(*overrides: str, module: str = "src.run", env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m src.run overrides...` from the project root, as a user types it."""
    environment = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", module, *overrides], cwd=ROOT, env=environment,
        capture_output=True, text=True, timeout=600,
    )
