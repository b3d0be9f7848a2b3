"""data=uea: archive problems through aeon, offline: the shipped ones with no flags, others from data.root."""

from pathlib import Path

import pytest
import torch

from conftest import compose_config
from src.config.errors import one_line
from src.data.image_files import DataError
from src.data.padded import Padded
from src.data.uea import SHIPPED, load_uea
from src.training.building import build_data

SETTINGS = dict(
    batch_size=16, eval_batch_size=64, val_size=0.2, normalize="channel", patch=1, stride=1, bucket=True, split_seed=0
)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Any attempt to reach the archive's servers fails the test."""
    import aeon.datasets._data_loaders as loaders

    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to download")

    monkeypatch.setattr(loaders, "_download_all_zenodo_files", refuse)
    monkeypatch.setattr(loaders, "_download_and_extract", refuse)


def write_ts(folder: Path, name: str) -> None:
    """A tiny univariate problem of unequal lengths in the archive's .ts format."""
    (folder / name).mkdir(parents=True)
    header = f"@problemName {name}\n@timeStamps false\n@missing false\n@univariate true\n"
    header += "@equalLength false\n@classLabel true up down\n@data\n"
    for split, count in (("TRAIN", 10), ("TEST", 6)):
        rows = []
        for k in range(count):
            values = [float(k % 5 + step) * (1 if k % 2 else -1) for step in range(3 + k % 4)]
            rows.append(",".join(map(str, values)) + (":up" if k % 2 else ":down"))
        (folder / name / f"{name}_{split}.ts").write_text(header + "\n".join(rows) + "\n")


def test_a_shipped_variable_length_problem_loads_with_no_flags():
    cfg = compose_config("data=uea", "data.name=JapaneseVowels")
    data = build_data(cfg, torch.device("cpu"))
    assert (len(data.train_y) + len(data.val_y), len(data.test_y)) == (270, 370)  # the official split
    assert len(data.val_y) == 54 and data.class_names == tuple("123456789") and data.input_size == 12
    assert data.seq_len is None and int(data.train_lengths.min()) == 7 and int(data.test_lengths.max()) == 29
    x, y = next(data.batches("train", shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert isinstance(x, Padded) and x.values.shape[0] == len(y) <= 32


def test_a_shipped_fixed_length_problem_reads_in_patches():
    data = load_uea("GunPoint", None, **{**SETTINGS, "stride": 2, "patch": 3})
    assert data.seq_len == 25 and data.input_size == 3 and data.class_names == ("1", "2")  # 150 steps / 2 / 3
    assert len(data.train_y) == 40 and len(data.test_y) == 150


def test_every_shipped_problem_is_found_offline(tmp_path):
    import aeon.datasets

    from src.data.uea import problem_folder

    bundled = Path(aeon.datasets.__file__).parent / "data"
    assert all(problem_folder(name, None, bundled) == bundled for name in SHIPPED)
    assert problem_folder("GunPoint", str(tmp_path), bundled) == bundled  # an empty root falls back


def test_another_problem_is_read_from_the_root_folder(tmp_path):
    write_ts(tmp_path, "Tiny")
    data = load_uea("Tiny", str(tmp_path), **{**SETTINGS, "val_size": 4, "normalize": "series"})
    assert data.class_names == ("up", "down") and len(data.test_y) == 6 and data.seq_len is None
    assert data.test_lengths.tolist() == [3, 4, 5, 6, 3, 4]


def test_a_missing_problem_names_the_folder_and_where_to_get_it(tmp_path):
    with pytest.raises(DataError) as raised:
        load_uea("Coffee", str(tmp_path), **SETTINGS)
    line = one_line(raised.value)
    assert "data.name=Coffee" in line and str(tmp_path) in line and "Coffee/Coffee_TRAIN.ts" in line
    assert "timeseriesclassification.com" in line and "JapaneseVowels" in line and "\n" not in line


def test_describe_reads_the_series_for_their_shape(capsys):
    from src.describe import describe

    describe(compose_config("data=uea", "data.name=GunPoint", "data.patch=5", "model.hidden_size=8"))
    assert "on series in patches of 5: 30 steps of 5 features, 2 classes" in capsys.readouterr().out


def test_a_shipped_problem_trains_with_no_flags(tmp_path):
    """`data=uea data.name=JapaneseVowels` and nothing else about the data: one small epoch through the job
    code the CLI runs (the CLI itself is tested in test_cli.py)."""
    from conftest import metrics_of, train_in_process

    overrides = ("trainer.epochs=1", "model.hidden_size=8", "trainer.device=cpu")
    metrics = train_in_process(tmp_path, "data=uea", "data.name=JapaneseVowels", *overrides)
    assert metrics["status"] == "ok" and metrics_of(tmp_path) == metrics and (tmp_path / "predictions.png").is_file()
