"""`data=uea data.name=<problem>`: a problem of the UCR/UEA time-series classification archive, read by aeon.

The problems aeon ships inside its wheel load offline with no flags; any other is read from `root`, a
folder holding `<name>/<name>_TRAIN.ts` and `<name>/<name>_TEST.ts` as the archive's zips unpack. Nothing
is ever downloaded here. The archive's own train/test split is kept; the validation part comes out of
its training split.
"""

from pathlib import Path
from typing import Any

import numpy as np
import torch

from src.config.schema import SeriesSchema
from src.data.image_files import DataError
from src.data.series import SeriesData
from src.data.series_assembly import Split, assemble, pad

# Shipped in aeon/datasets/data: the study in experiments/timeseries runs on these.
SHIPPED = (
    "ACSF1",
    "ArrowHead",
    "BasicMotions",
    "GunPoint",
    "ItalyPowerDemand",
    "JapaneseVowels",
    "OSULeaf",
    "PickupGestureWiimoteZ",
)
ARCHIVE = "https://timeseriesclassification.com/dataset.php"


def _aeon_datasets():
    try:
        import aeon.datasets  # imported on use: a heavy import that only these runs need
    except ImportError:
        raise DataError("data=uea needs aeon: pip install -e '.[timeseries]' (make setup installs it)") from None
    return aeon.datasets


def problem_folder(name: str, root: str | None, bundled: Path) -> Path:
    """The folder holding <name>/<name>_TRAIN.ts and _TEST.ts: `root` if it has them, else aeon's own."""

    def has(folder: Path) -> bool:
        return all((folder / name / f"{name}_{split}.ts").is_file() for split in ("TRAIN", "TEST"))

    candidates = [Path(root).expanduser()] if root else []
    for folder in [*candidates, bundled]:
        if has(folder):
            return folder
    where = candidates[0] if candidates else bundled
    raise DataError(
        f"data.name={name}: no {name}/{name}_TRAIN.ts and {name}/{name}_TEST.ts under {where}; download {name} "
        f"from {ARCHIVE} and unzip it there (data.root=<folder>), or pick one shipped with aeon: {', '.join(SHIPPED)}"
    )


def read_split(datasets, name: str, split: str, folder: Path) -> tuple[Split, list[str]]:
    """One official split as a Split (values (N, T, C)), and the class names in the file's header order."""
    x, labels, meta = datasets.load_classification(name, split=split, extract_path=str(folder), return_metadata=True)
    if isinstance(x, np.ndarray):  # equal lengths: (N, C, T)
        values = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1))).float()  # (N, T, C)
        lengths = torch.full((len(values),), values.shape[1], dtype=torch.int64)
    else:  # a list of (C, T_i)
        values, lengths = pad([torch.from_numpy(np.ascontiguousarray(s.T)).float() for s in x])  # (N, T, C)
    if not torch.isfinite(values).all():
        raise DataError(f"data.name={name}: the {split} split has missing or infinite values")
    return Split(values, lengths, np.asarray(labels).astype(str)), [str(c) for c in meta["class_values"]]


def load_uea(name: str, root: str | None, **series: Any) -> SeriesData:
    """An archive problem's official train/test split, with a validation part out of its training split;
    `series` holds the keys of SeriesSchema (batch sizes, validation part, normalisation, patches)."""
    datasets = _aeon_datasets()
    folder = problem_folder(name, root, Path(datasets.__file__).parent / "data")
    train, class_names = read_split(datasets, name, "train", folder)
    test, _ = read_split(datasets, name, "test", folder)
    return assemble(train, test, tuple(class_names), f"data.name={name}", SeriesSchema(**series))
