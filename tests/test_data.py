import gzip

import pytest
import torch
from torchvision import datasets

from conftest import easy_images, write_idx
from src.config.choices import Placement
from src.config.errors import ConfigError
from src.data import image_files
from src.data.batched import choose_placement
from src.data.image_files import CACHE_NAME, DataError, load_decoded
from src.data.images import load_images, make_synthetic

BATCHING = dict(batch_size=32, eval_batch_size=100, val_size=100, view="rows", permutation_seed=0, normalize=False)


def test_idx_files_load_through_torchvision_and_are_cached(idx_root):
    tensors = load_decoded("mnist", idx_root, download=False)
    images, labels = easy_images(600, seed=1)
    assert torch.equal(tensors["train_x"], images) and torch.equal(tensors["train_y"], labels)
    assert tensors["test_x"].shape == (200, 28, 28)
    assert (idx_root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()  # torchvision's own layout
    # The second start reads the decoded cache: it no longer needs the IDX files at all.
    for path in [*(idx_root / "MNIST" / "raw").iterdir(), *idx_root.glob("*.gz")]:
        path.unlink()
    assert torch.equal(load_decoded("mnist", idx_root, download=False)["train_x"], images)
    assert (idx_root / "MNIST" / CACHE_NAME).is_file()


def test_system_location_is_found_without_flags(tmp_path, monkeypatch):
    system = write_idx(tmp_path / "usr-share-datasets-fashion-mnist")
    monkeypatch.setitem(image_files.SYSTEM_DIRS, "fashion_mnist", (system,))
    data = load_images("fashion_mnist", str(tmp_path / "data"), download=False, split_seed=0, **BATCHING)
    assert len(data.train_y) == 500 and len(data.val_y) == 100 and len(data.test_y) == 200


def test_missing_files_name_the_files_the_directory_and_the_remedy(tmp_path, monkeypatch):
    monkeypatch.setitem(image_files.SYSTEM_DIRS, "fashion_mnist", ())
    with pytest.raises(DataError) as error:
        load_decoded("fashion_mnist", tmp_path / "nowhere", download=False)
    message = str(error.value)
    assert "train-images-idx3-ubyte" in message and str(tmp_path / "nowhere" / "FashionMNIST" / "raw") in message
    assert "apt-get install dataset-fashion-mnist" in message and "\n" not in message


def test_failed_download_is_reported_not_raised_raw(tmp_path, monkeypatch):
    monkeypatch.setitem(image_files.SYSTEM_DIRS, "kmnist", ())
    monkeypatch.setattr(datasets.KMNIST, "mirrors", ["http://127.0.0.1:9/"])  # refused at once
    with pytest.raises(DataError, match="download failed"):
        load_decoded("kmnist", tmp_path, download=True)


def test_corrupt_idx_file_is_named(tmp_path):
    root = write_idx(tmp_path)
    with gzip.open(root / "train-images-idx3-ubyte.gz", "wb") as handle:
        handle.write(b"\x00\x00\x99\x03not an idx file")
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_decoded("mnist", root, download=False)


@pytest.mark.parametrize(
    ("view", "shape"),
    [("rows", (32, 12, 10)), ("columns", (32, 10, 12)), ("pixels", (32, 120, 1)), ("permuted", (32, 120, 1))],
)
def test_views_shape_the_sequences(view, shape):
    data = make_synthetic(400, 50, 12, 10, 3, 0.1, 0, **{**BATCHING, "view": view})
    x, y = next(data.batches("train"))
    assert x.shape == shape and y.shape == (32,)
    assert (data.seq_len, data.input_size) == shape[1:]
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_permuted_view_is_a_fixed_permutation_of_pixels():
    base = make_synthetic(100, 10, 4, 5, 2, 0.1, 0, **{**BATCHING, "val_size": 10, "view": "pixels"})
    permuted = make_synthetic(100, 10, 4, 5, 2, 0.1, 0, **{**BATCHING, "val_size": 10, "view": "permuted"})
    pixels = base.as_sequences(base.test_x).squeeze(-1)
    shuffled = permuted.as_sequences(permuted.test_x).squeeze(-1)
    assert torch.equal(shuffled, pixels[:, permuted.permutation])
    assert not torch.equal(shuffled, pixels)


def test_split_is_disjoint_seeded_and_normalised_on_training_images_only():
    data = make_synthetic(300, 80, 6, 4, 3, 0.2, 7, **{**BATCHING, "val_size": 60, "normalize": True})
    again = make_synthetic(300, 80, 6, 4, 3, 0.2, 7, **{**BATCHING, "val_size": 60, "normalize": True})
    assert len(data.train_y) == 240 and len(data.val_y) == 60
    assert torch.equal(data.val_x, again.val_x)
    assert data.mean == pytest.approx(data.train_x.float().div(255).mean().item())
    seen = torch.cat([y for _, y in data.batches("train", shuffle=True, generator=torch.Generator().manual_seed(0))])
    assert torch.equal(seen.sort().values, data.train_y.sort().values)


def test_val_size_must_leave_training_data():
    with pytest.raises(ConfigError, match="data.val_size"):
        make_synthetic(50, 10, 4, 4, 2, 0.1, 0, **{**BATCHING, "val_size": 50})


def test_placement_host_streams_batches_and_device_holds_the_data():
    data = make_synthetic(300, 50, 6, 4, 3, 0.2, 0, **{**BATCHING, "val_size": 50})
    host, held = data.place(torch.device("cpu"), "host"), data.place(torch.device("cpu"), "device")
    assert host.train_x.data_ptr() == data.train_x.data_ptr()  # not copied: streamed batch by batch
    assert data.nbytes == sum(
        t.numel() * t.element_size()
        for t in (data.train_x, data.train_y, data.val_x, data.val_y, data.test_x, data.test_y, data.permutation)
    )
    for (x_host, y_host), (x_held, y_held) in zip(host.batches("test"), held.batches("test"), strict=True):
        assert torch.equal(x_host, x_held) and torch.equal(y_host, y_held)
    assert choose_placement("auto", nbytes=100, free_bytes=400) == Placement.device  # a quarter of the free memory
    assert choose_placement("auto", nbytes=101, free_bytes=400) == Placement.host
    assert choose_placement("host", nbytes=1, free_bytes=400) == Placement.host


def test_parallel_first_loads_of_one_dataset_do_not_clash(idx_root):
    """Jobs of a fresh sweep all decode the same files at once: each must get whole files. Threads released
    together by a barrier race as processes do: every writer has its own temp name (pid and thread)."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    start = Barrier(3)

    def first_load(_: int) -> int:
        start.wait()
        return len(load_decoded("mnist", idx_root, False)["train_y"])

    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(first_load, range(3))) == [600] * 3
    assert not list((idx_root / "MNIST").rglob("*.tmp"))
    assert len(load_decoded("mnist", idx_root, download=False)["train_y"]) == 600


def test_train_size_keeps_one_subset_of_the_training_split_for_every_run(idx_root):
    whole = load_images("mnist", str(idx_root), False, 0, **BATCHING)
    subset = load_images("mnist", str(idx_root), False, 0, train_size=50, **BATCHING)
    again = load_images("mnist", str(idx_root), False, 0, train_size=50, **BATCHING)
    assert len(subset.train_y) == 50 and torch.equal(subset.train_x, again.train_x)
    assert torch.equal(subset.train_x, whole.train_x[:50])  # the first of the same drawn order
    assert torch.equal(subset.val_x, whole.val_x) and torch.equal(subset.test_x, whole.test_x)
    with pytest.raises(ConfigError, match=r"data.train_size=501 is not allowed: expected null or at most 500"):
        load_images("mnist", str(idx_root), False, 0, train_size=501, **BATCHING)
