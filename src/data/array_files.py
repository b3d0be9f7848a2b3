"""`data=arrays`: your own series from a .npz or .pt file, read without unpickling anything.

A file holds `x` (N, T, F) float or uint8 (uint8 scaled to [0, 1], as images are), or in a .pt file a list
of (T_i, F) tensors; optionally `lengths` (N,) when x is padded; and `y` (N,) integer or string labels.
The test split is `x_test`/`y_test` (and `lengths_test`) in the same file, or the x/y of `test_path`;
with neither, `test_size` of the series is held out as the test split.
"""

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from src.config.errors import ConfigError
from src.config.schema import SeriesSchema
from src.data.image_files import DataError
from src.data.padded import valid_steps
from src.data.series import SeriesData
from src.data.series_assembly import Split, assemble, class_names_of, holdout, pad

SUFFIXES = (".npz", ".pt")


def read_arrays(path: Path, key: str) -> dict:
    """The arrays of a .npz or .pt file; no code in the file can run (no pickle)."""
    if not path.is_file():
        raise ConfigError(key, str(path), "an existing .npz or .pt file")
    if path.suffix not in SUFFIXES:
        raise ConfigError(key, str(path), "a .npz or .pt file")
    try:
        if path.suffix == ".pt":
            contents = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(contents, dict):
                raise DataError(f"{path}: holds a {type(contents).__name__}; expected a dict of x, y, ...")
            return contents
        with np.load(path, allow_pickle=False) as archive:
            return {name: _read_npz(archive, name, path) for name in archive.files}
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError, EOFError) as error:
        if isinstance(error, DataError):
            raise
        if isinstance(error, pickle.UnpicklingError):  # torch's text would advise loading it unsafely
            raise DataError(f"{path}: cannot read it safely: it holds Python objects, not only tensors") from None
        raise DataError(f"{path}: cannot read: {str(error).splitlines()[0]}") from None


def _read_npz(archive: np.lib.npyio.NpzFile, name: str, path: Path) -> np.ndarray:
    try:
        return archive[name]
    except ValueError:  # an object array: reading it would unpickle
        raise DataError(
            f"{path}: '{name}' holds Python objects, which would need unpickling; save numbers or strings"
        ) from None


def split_of(arrays: dict, x_key: str, y_key: str, lengths_key: str, path: Path) -> Split:
    """One split from a file's arrays, checked: shapes, lengths, finite values, labels."""
    for key in (x_key, y_key):
        if key not in arrays:
            raise DataError(f"{path}: no '{key}' (found: {', '.join(sorted(arrays)) or 'nothing'})")
    x, lengths = _values(arrays[x_key], arrays.get(lengths_key), path, x_key, lengths_key)
    labels = np.asarray(arrays[y_key].numpy() if isinstance(arrays[y_key], Tensor) else arrays[y_key])
    if labels.ndim != 1 or len(labels) != len(x):
        raise DataError(
            f"{path}: '{y_key}' has shape {labels.shape}; expected ({len(x)},), one label per series of '{x_key}'"
        )
    if len(x) == 0:
        raise DataError(f"{path}: '{x_key}' holds no series: the split is empty")
    valid = valid_steps(lengths, x.shape[1], x.device)  # (N, T)
    if not torch.isfinite(x[valid]).all():
        raise DataError(f"{path}: '{x_key}' has NaN or infinite values")
    # where, not a product: NaN padding (a common convention for unequal lengths) times 0 stays NaN.
    return Split(torch.where(valid.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype)), lengths, labels)


def _values(x: object, lengths: object, path: Path, x_key: str, lengths_key: str) -> tuple[Tensor, Tensor]:
    """values (N, T, F) float32 and lengths (N,) from an array, or from a list of (T_i, F) tensors."""
    if isinstance(x, list):
        if not all(isinstance(s, Tensor) and s.dim() == 2 and len(s) > 0 for s in x):
            raise DataError(f"{path}: '{x_key}' is a list: expected non-empty (T_i, F) tensors in it")
        if len({s.shape[1] for s in x}) > 1:
            raise DataError(f"{path}: '{x_key}' holds series with different numbers of features")
        return pad([s.float() / 255.0 if s.dtype == torch.uint8 else s.float() for s in x])
    x = torch.as_tensor(np.asarray(x)) if not isinstance(x, Tensor) else x
    if x.dim() != 3:
        raise DataError(
            f"{path}: '{x_key}' has shape {tuple(x.shape)}; expected 3 dimensions (N, T, F), (N, T, 1) if univariate"
        )
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if lengths is None:
        return x, torch.full((len(x),), x.shape[1], dtype=torch.int64)
    lengths = torch.as_tensor(np.asarray(lengths)).long()
    if lengths.dim() != 1 or len(lengths) != len(x):
        raise DataError(
            f"{path}: '{lengths_key}' has shape {tuple(lengths.shape)}; expected ({len(x)},), one per series"
        )
    if len(lengths) and not (1 <= lengths.min() and lengths.max() <= x.shape[1]):
        raise DataError(f"{path}: '{lengths_key}' must lie in 1..{x.shape[1]} (the steps of '{x_key}')")
    return x, lengths


def load_arrays(path: str, test_path: str | None, test_size: float, **series: Any) -> SeriesData:
    """Series and labels from `path` (and `test_path`), split, normalised and batched; `series` holds the
    keys of SeriesSchema (batch sizes, validation part, normalisation, patches)."""
    settings = SeriesSchema(**series)
    file = Path(path).expanduser()
    arrays = read_arrays(file, "data.path")
    train = split_of(arrays, "x", "y", "lengths", file)
    class_names = class_names_of(train.labels)  # before any test series are held out: every class counts
    if test_path:
        test_file = Path(test_path).expanduser()
        test = split_of(read_arrays(test_file, "data.test_path"), "x", "y", "lengths", test_file)
    elif "x_test" in arrays or "y_test" in arrays:
        test = split_of(arrays, "x_test", "y_test", "lengths_test", file)
    else:
        kept, held = holdout(train.labels, test_size, "data.test_size", settings.split_seed + 1)
        train, test = train.take(kept), train.take(held)
    if train.x.shape[2] != test.x.shape[2]:
        raise DataError(
            f"{file}: the test series have {test.x.shape[2]} features and the training ones {train.x.shape[2]}"
        )
    return assemble(train, test, class_names, f"{file} 'y'", settings)
