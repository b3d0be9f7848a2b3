"""Find, unpack, decode and cache the IDX files of the MNIST family, offline first.

Decoding goes through torchvision's own dataset classes; we only decide where the files come from,
so that a machine with no network (or Debian's dataset packages) works without flags.
"""

import gzip
import io
import pickle
import shutil
from pathlib import Path

import torch

from src.runs.atomic import write_atomically, write_bytes_atomically

# torchvision's dataset class for each name; also the folder under root where torchvision keeps it.
# torchvision itself is imported only to decode (1.4 s of start-up): a cached start never needs it.
TORCHVISION_CLASSES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "kmnist": "KMNIST"}
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# Where Debian's dataset packages (apt-get install dataset-fashion-mnist) put the gzipped files.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {
    "mnist": (Path("/usr/share/datasets/mnist"),),
    "fashion_mnist": (Path("/usr/share/datasets/fashion-mnist"),),
    "kmnist": (Path("/usr/share/datasets/kmnist"),),
}
CACHE_NAME = "seqlab-decoded-v2.pt"  # v2: with class names


class DataError(RuntimeError):
    """Data that cannot be found or read; the message names the files and how to get them."""


def _find(name: str, search: list[Path]) -> Path | None:
    for folder in search:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _unpack_local(raw: Path, search: list[Path]) -> bool:
    """Copy or gunzip the four files into torchvision's raw folder; False if any is missing."""
    found = {name: _find(name, search) for name in IDX_FILES}
    if any(path is None for path in found.values()):
        return False
    raw.mkdir(parents=True, exist_ok=True)
    for name, source in found.items():
        target = raw / name
        if source == target:
            continue
        opener = gzip.open if source.suffix == ".gz" else open
        with opener(source, "rb") as src:  # parallel jobs may unpack at once: each writes whole files
            write_atomically(target, lambda dst, src=src: shutil.copyfileobj(src, dst))
    return True


def _torchvision_class(dataset: str) -> type:
    from torchvision import datasets

    return getattr(datasets, TORCHVISION_CLASSES[dataset])


def _decode(cls: type, root: Path, raw: Path) -> dict:
    tensors: dict = {"classes": list(cls.classes)}
    for split, train in (("train", True), ("test", False)):
        try:
            part = cls(str(root), train=train, download=False)
        except Exception as error:  # torchvision signals bad files with bare asserts
            prefix = "train" if train else "t10k"
            raise DataError(
                f"cannot decode {raw}/{prefix}-images-idx3-ubyte or {prefix}-labels-idx1-ubyte "
                f"as IDX files ({type(error).__name__}: {error}); delete them to fetch them again"
            ) from error
        if len(part.data) != len(part.targets):
            raise DataError(
                f"{raw}: {split} images ({len(part.data)}) and labels ({len(part.targets)}) differ in length"
            )
        tensors[f"{split}_x"], tensors[f"{split}_y"] = part.data.contiguous(), part.targets
    return tensors


def load_decoded(dataset: str, root: str | Path, download: bool) -> dict:
    """Train/test images (N, 28, 28) uint8, labels and class names of one dataset, decoding once."""
    root = Path(root)
    folder = root / TORCHVISION_CLASSES[dataset]
    raw, cache = folder / "raw", folder / CACHE_NAME
    if cache.is_file():
        try:
            return torch.load(cache, weights_only=True)
        except pickle.UnpicklingError:  # not a cache seqlab wrote: it holds Python objects, not only tensors
            raise DataError(f"{cache}: cannot read it safely: not a cache seqlab wrote; delete it") from None
    cls = _torchvision_class(dataset)
    search = [raw, folder, root, *SYSTEM_DIRS.get(dataset, ())]
    if not _unpack_local(raw, search):
        download_error = _download(cls, root) if download else "download=false"
        if download_error:
            names = ", ".join(f"{name}[.gz]" for name in IDX_FILES)
            raise DataError(
                f"data={dataset}: no IDX files found in {', '.join(map(str, search))} and no download "
                f"({download_error}); put {names} in {raw}"
                + (" or run `apt-get install dataset-fashion-mnist`" if dataset == "fashion_mnist" else "")
            )
    tensors = _decode(cls, root, raw)
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    write_bytes_atomically(cache, buffer.getvalue())  # two runs starting at once must not read half a cache
    return tensors


def _download(cls: type, root: Path) -> str:
    """Let torchvision download the files; return why it failed, or '' on success."""
    try:
        cls(str(root), train=True, download=True)
    except Exception as error:
        return f"download failed: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return ""
