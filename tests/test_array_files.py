"""data=arrays: your own series from .npz/.pt files, and the one line each bad file gets."""

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import metrics_of, refused_line, train_in_process
from src.config.errors import ConfigError, one_line
from src.data.array_files import load_arrays
from src.data.image_files import DataError
from src.data.padded import Padded

SETTINGS = dict(
    batch_size=8, eval_batch_size=16, val_size=0.25, normalize="none", patch=1, stride=1, bucket=True, split_seed=0
)
NAMES = np.array(["walk", "run", "sit"])


def series_arrays(count: int, seed: int, steps: int = 12) -> dict[str, np.ndarray]:
    """x (N, T, 2) padded to T, lengths (N,) in 4..T, y (N,) strings: a class is a sine of its own frequency."""
    generator = np.random.default_rng(seed)
    labels = generator.integers(0, 3, count)
    lengths = generator.integers(4, steps + 1, count)
    time_axis = np.arange(steps)[None, :, None]  # (1, T, 1)
    x = np.sin((labels[:, None, None] + 1) * 0.5 * time_axis) + 0.1 * generator.standard_normal((count, steps, 2))
    x = np.where(time_axis < lengths[:, None, None], x, 0.0).astype(np.float32)
    return {"x": x, "lengths": lengths, "y": NAMES[labels]}


def write_npz(path: Path, count: int = 60, with_test: bool = True, **changes) -> Path:
    arrays = series_arrays(count, seed=1)
    if with_test:
        arrays |= {f"{key}_test": value for key, value in series_arrays(30, seed=2).items()}
    arrays |= changes
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
    return path


def test_npz_with_lengths_and_string_labels(tmp_path):
    data = load_arrays(str(write_npz(tmp_path / "my.npz")), None, 0.2, **SETTINGS)
    assert data.class_names == ("run", "sit", "walk")  # sorted text labels
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (45, 15, 30)
    assert data.input_size == 2 and data.seq_len is None and data.variable_lengths
    expected = series_arrays(30, seed=2)
    assert torch.equal(data.test_lengths, torch.as_tensor(expected["lengths"]))
    assert torch.equal(data.test_x, torch.as_tensor(expected["x"]))  # normalize=none: as written
    assert [data.class_names[k] for k in data.test_y] == expected["y"].tolist()
    x, y = next(data.batches("test"))
    assert isinstance(x, Padded) and x.values.shape == (16, int(x.lengths.max()), 2) and len(y) == 16


def test_val_size_is_a_count_or_a_fraction_and_stratified(tmp_path):
    path = str(write_npz(tmp_path / "my.npz"))
    by_count = load_arrays(path, None, 0.2, **{**SETTINGS, "val_size": 12})
    by_fraction = load_arrays(path, None, 0.2, **{**SETTINGS, "val_size": 0.2})
    assert len(by_count.val_y) == len(by_fraction.val_y) == 12 and len(by_count.train_y) == 48
    assert torch.equal(by_count.val_x, by_fraction.val_x)  # a fixed split seed: the same series
    assert set(by_count.val_y.tolist()) == {0, 1, 2}  # every class has its share


def test_pt_file_with_a_list_of_tensors_and_a_separate_test_file(tmp_path):
    def write(path: Path, seed: int) -> None:
        arrays = series_arrays(40, seed)
        series = [torch.from_numpy(x[:n]) for x, n in zip(arrays["x"], arrays["lengths"], strict=True)]
        torch.save({"x": series, "y": torch.as_tensor(np.searchsorted(["run", "sit", "walk"], arrays["y"]))}, path)

    write(tmp_path / "train.pt", 1)
    write(tmp_path / "test.pt", 2)
    data = load_arrays(str(tmp_path / "train.pt"), str(tmp_path / "test.pt"), 0.2, **SETTINGS)
    assert data.class_names == ("0", "1", "2") and len(data.test_y) == 40 and data.variable_lengths
    assert torch.equal(data.test_lengths, torch.as_tensor(series_arrays(40, 2)["lengths"]))


def test_without_a_test_split_one_is_held_out_and_uint8_is_scaled(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (50, 6, 1)).astype(np.uint8)
    np.savez(tmp_path / "u8.npz", x=x, y=np.arange(50) % 2)
    data = load_arrays(str(tmp_path / "u8.npz"), None, 10, **SETTINGS)
    assert (len(data.train_y), len(data.val_y), len(data.test_y)) == (30, 10, 10)
    assert data.seq_len == 6 and not data.variable_lengths and 0 <= data.test_x.min() and data.test_x.max() <= 1
    x, _ = next(data.batches("train"))
    assert isinstance(x, torch.Tensor) and x.shape == (8, 6, 1)  # fixed length: plain tensors


def test_a_variable_length_run_trains_and_draws_its_pictures(tmp_path):
    path = write_npz(tmp_path / "my.npz")
    overrides = ("data=arrays", f"data.path={path}", "model.hidden_size=8", "trainer.device=cpu", "trainer.epochs=2")
    metrics = train_in_process(tmp_path / "run", *overrides, "model.bidirectional=true", "model.head=mean")
    assert metrics["status"] == "ok" and metrics["epochs_completed"] == 2 and metrics["view"] == "series"
    assert metrics_of(tmp_path / "run") == metrics
    assert (tmp_path / "run" / "predictions.png").stat().st_size > 0 and (tmp_path / "run" / "confusion.png").is_file()


def object_labels(path: Path) -> None:
    write_npz(path, y=np.array([{"a": 1}] * 60, dtype=object))


BAD_FILES = [
    # (how to write data.npz, extra overrides, the exception that refuses it, what its one line must contain)
    (lambda p: None, (), ConfigError, ["data.path=", "data.npz", "an existing .npz or .pt file"]),
    (lambda p: write_npz(p, y=None), (), DataError, ["data.npz", "no 'y'", "found: lengths, lengths_test, x"]),
    (
        lambda p: write_npz(p, y=NAMES[np.arange(59) % 3]),
        (),
        DataError,
        ["data.npz", "'y' has shape (59,)", "expected (60,)"],
    ),
    (
        lambda p: write_npz(p, x=np.zeros((60, 12))),
        (),
        DataError,
        ["data.npz", "'x' has shape (60, 12)", "3 dimensions"],
    ),
    (
        lambda p: write_npz(p, x_test=np.full((30, 12, 2), np.nan)),
        (),
        DataError,
        ["data.npz", "'x_test'", "NaN or infinite"],
    ),
    (lambda p: write_npz(p, x=np.full((60, 12, 2), np.inf)), (), DataError, ["data.npz", "'x'", "NaN or infinite"]),
    (
        lambda p: write_npz(p, y=np.array(["walk"] * 60)),
        (),
        DataError,
        ["data.npz 'y'", "1 class (walk)", "two or more"],
    ),
    (
        lambda p: write_npz(p, x_test=np.zeros((0, 12, 2)), y_test=np.array([]), lengths_test=None),
        (),
        DataError,
        ["'x_test'", "empty"],
    ),
    (
        lambda p: write_npz(p),
        ("data.val_size=60",),
        ConfigError,
        ["data.val_size=60", "leaving both parts non-empty (60"],
    ),
    (lambda p: write_npz(p, lengths=np.full(60, 13)), (), DataError, ["data.npz", "'lengths' must lie in 1..12"]),
    (object_labels, (), DataError, ["data.npz", "'y' holds Python objects", "unpickling"]),
    (lambda p: write_npz(p), ("model.head=flatten",), ConfigError, ["model.head='flatten'", "differ in length"]),
    (lambda p: write_npz(p), ("data.patch=0",), ConfigError, ["data.patch=0", "an integer > 0"]),
]


@pytest.mark.parametrize(("write", "overrides", "error", "expected"), BAD_FILES, ids=[e[-1] for *_, e in BAD_FILES])
def test_bad_files_get_one_line_naming_the_file_and_the_key(tmp_path, write, overrides, error, expected):
    path = tmp_path / "data.npz"
    write(path)
    overrides = ["data=arrays", f"data.path={path}", "model.hidden_size=8", "trainer.device=cpu", *overrides]
    line = refused_line(tmp_path / "run", overrides, error)
    for fragment in expected:
        assert fragment in line


def test_nan_padding_is_read_as_zeros_and_a_series_run_predicts_through_the_api(tmp_path):
    from src.api import train

    arrays = series_arrays(60, seed=1)
    padding = np.arange(12)[None, :, None] >= arrays["lengths"][:, None, None]
    path = write_npz(tmp_path / "nan.npz", x=np.where(padding, np.nan, arrays["x"]).astype(np.float32))
    data = load_arrays(str(path), None, 0.2, **(SETTINGS | {"normalize": "series"}))
    assert torch.isfinite(data.train_x).all() and torch.isfinite(data.test_x).all()
    run = train(
        "data=arrays",
        f"data.path={path}",
        "model.hidden_size=8",
        "trainer.epochs=1",
        "trainer.device=cpu",
        run_dir=tmp_path / "run",
    )
    predicted = run.predict(run.data.test_x, run.data.test_lengths)
    accuracy = (predicted == run.data.test_y.cpu()).float().mean().item()
    assert accuracy == pytest.approx(run.metrics["test_acc"])


def test_a_pt_file_torch_will_not_read_safely_is_one_line_naming_it(tmp_path):
    path = tmp_path / "arrays.pt"
    torch.save({"x": np.zeros((4, 3, 1)), "y": np.zeros(4)}, path)  # numpy arrays: unpickling needed
    with pytest.raises(DataError) as raised:
        load_arrays(str(path), None, 0.2, **SETTINGS)
    line = one_line(raised.value)
    assert "\n" not in line and line.startswith(f"{path}: cannot read")
