"""Files from elsewhere are data: a crafted pickle is refused in one line wherever seqlab reads a file, and
nothing in it runs; the checkpoints seqlab writes, and wrote before src/ was regrouped, load safely."""

import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT, TINY, metrics_of, run_cli, train_in_process
from src.config.errors import one_line
from src.training.checkpoint_reader import CheckpointError, UnsafeCheckpoint, read_checkpoint

FIXTURES = ROOT / "tests" / "checkpoints"
# The run that wrote the committed checkpoints, and what it measured (test_acc 0.978, val_acc 0.955).
FIXTURE_RUN = ("data=synthetic", "model.hidden_size=16", "trainer.device=cpu")
FIXTURE_TEST_ACC = 0.978
REFUSED = "is not a safe seqlab checkpoint"


class CreatesFile:
    """Unpickled, calls os.system to create `marker`: what a crafted checkpoint runs on an unsafe load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch '{self.marker}'",)


def craft(path: Path, marker: Path, kind: str = "zip") -> Path:
    """A file that looks like a seqlab checkpoint and creates `marker` when unpickled: in torch's zip
    format, torch's older bare format, or as a bare pickle of protocol 5."""
    payload = {"format": 2, "model": CreatesFile(marker), "config": {}, "state": {}}
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "bare":
        path.write_bytes(pickle.dumps(payload, protocol=5))
    else:
        torch.save(payload, path, _use_new_zipfile_serialization=kind == "zip")
    return path


def refused_in_one_line(error: BaseException, path: Path) -> None:
    line = one_line(error)
    assert line.startswith(f"{path} {REFUSED}: it ") and "\n" not in line
    assert line.endswith("refused, nothing in it was run")


@pytest.mark.parametrize("kind", ["zip", "legacy", "bare"])
def test_a_crafted_file_really_runs_code_when_loaded_unsafely(tmp_path, kind):
    """The attack the other tests refuse: torch.load(weights_only=False) on it creates the marker."""
    marker = tmp_path / "created"
    craft(tmp_path / "evil.pt", marker, kind)
    if kind == "bare":
        pickle.loads((tmp_path / "evil.pt").read_bytes())
    else:
        torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(
    ("kind", "asks"),
    [
        ("zip", "asks to import posix.system"),
        ("legacy", "asks to import posix.system"),
        ("bare", "is a bare pickle of protocol 5"),
    ],
)
def test_reading_a_crafted_checkpoint_refuses_it_and_runs_nothing(tmp_path, kind, asks):
    marker = tmp_path / "created"
    evil = craft(tmp_path / "evil.pt", marker, kind)
    with pytest.raises(UnsafeCheckpoint) as raised:
        read_checkpoint(evil)
    refused_in_one_line(raised.value, evil)
    assert f"{REFUSED}: it {asks}," in str(raised.value)
    assert not marker.exists()


def test_evaluate_on_the_command_line_refuses_a_crafted_checkpoint_in_one_line(tmp_path):
    marker = tmp_path / "created"
    evil = craft(tmp_path / "evil.pt", marker)
    result = run_cli(f"ckpt={evil}", "device=cpu", f"hydra.run.dir={tmp_path / 'out'}", module="src.evaluate")
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"error: {evil} {REFUSED}: it asks to import posix.system")
    assert not marker.exists() and not (tmp_path / "out" / "evaluation.json").exists()


def test_load_run_refuses_a_run_directory_holding_a_crafted_checkpoint(tmp_path):
    from src.api import load_run

    marker = tmp_path / "created"
    evil = craft(tmp_path / "run" / "checkpoints" / "last.pt", marker)
    with pytest.raises(UnsafeCheckpoint) as raised:
        load_run(tmp_path / "run")
    refused_in_one_line(raised.value, evil)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["zip", "bare"])
def test_resume_refuses_a_crafted_last_checkpoint_rather_than_falling_back(tmp_path, kind):
    """Damage makes resume fall back to previous.pt (test_faults.py); a crafted file is an attack on
    the run directory, so resume stops and names it, though previous.pt and best.pt are whole."""
    train_in_process(tmp_path, *TINY, "trainer.epochs=2")
    marker = tmp_path / "created"
    evil = craft(tmp_path / "checkpoints" / "last.pt", marker, kind)
    assert read_checkpoint(tmp_path / "checkpoints" / "previous.pt")["state"]["epoch"] == 1
    with pytest.raises(UnsafeCheckpoint) as raised:
        train_in_process(tmp_path, *TINY, "trainer.epochs=3", "trainer.resume=true")
    refused_in_one_line(raised.value, evil)
    assert not marker.exists() and metrics_of(tmp_path)["epochs_completed"] == 2


def test_a_crafted_array_file_is_refused_in_one_line(tmp_path):
    from src.data.array_files import read_arrays
    from src.data.image_files import DataError

    marker = tmp_path / "created"
    evil = craft(tmp_path / "series.pt", marker)
    with pytest.raises(DataError) as raised:
        read_arrays(evil, "data.path")
    line = one_line(raised.value)
    assert line.startswith(f"{evil}: cannot read it safely") and "\n" not in line and "weights_only" not in line
    assert not marker.exists()


def test_a_crafted_decoded_image_cache_is_refused_in_one_line(tmp_path):
    from src.data.image_files import CACHE_NAME, DataError, load_decoded

    marker = tmp_path / "created"
    cache = craft(tmp_path / "data" / "MNIST" / CACHE_NAME, marker)
    with pytest.raises(DataError) as raised:
        load_decoded("mnist", tmp_path / "data", download=False)
    line = one_line(raised.value)
    assert line.startswith(f"{cache}: cannot read it safely") and "\n" not in line and "delete it" in line
    assert not marker.exists()


def test_the_sweep_report_reads_overrides_as_written_and_builds_no_python_objects(tmp_path, monkeypatch):
    from src.sweeps.report import collect

    monkeypatch.setenv("SEQLAB_SECRET", "hunter2")
    job = tmp_path / "0_seed=1" / ".hydra"
    job.mkdir(parents=True)
    (job / "overrides.yaml").write_text("- seed=1\n- data.root=${oc.env:SEQLAB_SECRET}\n")
    assert collect(tmp_path)[0]["overrides"] == "seed=1 data.root=${oc.env:SEQLAB_SECRET}"  # not resolved
    marker = tmp_path / "created"
    (job / "overrides.yaml").write_text(f'- !!python/object/apply:os.system ["touch {marker}"]\n')
    with pytest.raises(yaml.constructor.ConstructorError, match="python/object/apply:os.system"):
        collect(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["format1_synthetic.pt", "format2_synthetic.pt"])
def test_checkpoints_written_before_the_package_move_evaluate_as_recorded(tmp_path, name):
    from src.evaluate import evaluate_checkpoint

    report = evaluate_checkpoint(FIXTURES / name, "cpu", None, tmp_path)
    assert report["epoch"] == 2 and report["test_acc"] == FIXTURE_TEST_ACC
    assert read_checkpoint(FIXTURES / name)["state"]["best_val_acc"] == 0.955


@pytest.mark.parametrize("name", ["format1_synthetic.pt", "format2_synthetic.pt"])
def test_checkpoints_written_before_the_package_move_resume_from_their_epoch(tmp_path, name, caplog):
    (tmp_path / "checkpoints").mkdir()
    shutil.copy(FIXTURES / name, tmp_path / "checkpoints" / "last.pt")
    with caplog.at_level("INFO"):
        metrics = train_in_process(tmp_path, *FIXTURE_RUN, "trainer.epochs=3", "trainer.resume=true")
    assert f"at epoch 2, step {read_checkpoint(FIXTURES / name)['state']['step']}" in caplog.text
    assert metrics["status"] == "ok" and metrics["epochs_completed"] == 3
    history = read_checkpoint(tmp_path / "checkpoints" / "last.pt")["state"]["history"]
    assert [row["epoch"] for row in history] == [0, 1, 2, 3] and history[2]["test/acc"] == FIXTURE_TEST_ACC


@pytest.mark.parametrize(
    "overrides",
    [
        ("scheduler=onecycle", "model.dropout=0.2"),
        ("scheduler=plateau", "optimizer=sgd"),
        ("scheduler=cosine", "optimizer=adamw", "model=gru"),
        ("scheduler=step", "optimizer=rmsprop", "trainer.precision=bf16"),
    ],
)
def test_every_checkpoint_a_run_writes_reads_back_with_the_safe_loader(tmp_path, overrides):
    """Optimizer and scheduler states, RNG states and the config are tensors and plain values only:
    nothing needs allowing (mid-epoch checkpoints: test_preemption.py, read with the same reader)."""
    train_in_process(tmp_path, *TINY, *overrides)
    written = sorted((tmp_path / "checkpoints").glob("*.pt"))
    assert [path.name for path in written] == ["best.pt", "last.pt"]
    for path in written:
        checkpoint = torch.load(path, weights_only=True)  # what read_checkpoint does, without its checks
        assert checkpoint["config"] == read_checkpoint(path)["config"]
        assert checkpoint["scheduler"] is not None


def test_a_damaged_file_is_still_damage_not_an_attack(tmp_path):
    """Only a file that asks for code is refused as unsafe; text, zeros and a truncated zip are damaged or
    foreign files, which a resume may skip for an older one."""
    whole = (FIXTURES / "format2_synthetic.pt").read_bytes()
    for content in (b"some notes", bytes(4096), whole[: len(whole) // 2]):
        path = tmp_path / "damaged.pt"
        path.write_bytes(content)
        with pytest.raises(CheckpointError) as raised:
            read_checkpoint(path)
        assert type(raised.value) is CheckpointError and REFUSED not in str(raised.value)
        assert "set to `False`" not in str(raised.value) and "\n" not in one_line(raised.value)  # no unsafe advice


def test_a_checkpoint_whose_config_names_other_code_to_build_is_refused(tmp_path):
    """A file the safe loader reads (plain values only) whose config asks a rebuild to call os.system."""
    marker = tmp_path / "created"
    evil = tmp_path / "evil.pt"
    good = torch.load(FIXTURES / "format2_synthetic.pt", weights_only=True)
    good["config"]["data"]["_target_"] = "os.system"
    good["config"]["data"]["command"] = f"touch '{marker}'"
    torch.save(good, evil)
    with pytest.raises(UnsafeCheckpoint) as raised:
        read_checkpoint(evil)
    refused_in_one_line(raised.value, evil)
    assert "names os.system to build" in one_line(raised.value)
    result = run_cli(f"ckpt={evil}", "device=cpu", f"hydra.run.dir={tmp_path / 'out'}", module="src.evaluate")
    assert result.returncode == 1 and result.stderr.startswith(f"error: {evil} {REFUSED}: it names os.system")
    assert not marker.exists()
