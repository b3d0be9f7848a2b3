"""Trust under faults: one writer per run directory, a directory of its own per launch, writes that fail
whole (a full disk), corrupt or foreign checkpoints, degenerate data values."""

import errno
import os
import socket
import subprocess
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import CONF, TINY, metrics_of, run_cli, sweep_in_process, train_in_process
from src.config.errors import one_line
from src.runs import atomic
from src.runs.atomic import write_bytes_atomically
from src.runs.runlock import LOCK_FILE, RunDirBusy, hold_run_dir
from src.sweeps.report import write_report
from src.training.checkpoint_reader import CheckpointError, read_checkpoint

NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"


class FullDisk:
    """A file handle on a disk that fills up: half of the first write lands, then ENOSPC."""

    def __init__(self, handle) -> None:
        self.handle = handle

    def write(self, data: bytes) -> int:
        self.handle.write(bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, NO_SPACE)

    def __getattr__(self, name: str):
        return getattr(self.handle, name)

    def __enter__(self) -> "FullDisk":
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def fill_disk_for(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """From now on, atomic writes of files called `name` meet a full disk."""
    real_open = open

    def opener(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        return FullDisk(handle) if Path(path).name.startswith(f".{name}.") else handle

    monkeypatch.setattr(atomic, "open", opener, raising=False)


def temp_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".*.tmp"))


def test_a_second_writer_is_refused_naming_the_holder_and_a_dead_holders_lock_is_taken_over(tmp_path, caplog):
    with hold_run_dir(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text().strip() == f"pid {os.getpid()} on host {socket.gethostname()}"
        with pytest.raises(RunDirBusy, match=f"in use by pid {os.getpid()} on host"):
            with hold_run_dir(tmp_path):
                pass
    assert not (tmp_path / LOCK_FILE).exists()  # released on the way out
    (tmp_path / LOCK_FILE).write_text("pid 999999 on host gone\n")  # what a SIGKILLed run leaves
    with caplog.at_level("WARNING"), hold_run_dir(tmp_path):
        pass
    assert "took over" in caplog.text and "pid 999999 on host gone" in caplog.text


def test_a_run_aimed_at_a_directory_in_use_is_refused_in_one_line_and_writes_nothing(tmp_path):
    with hold_run_dir(tmp_path):  # this test process is the live writer; the CLI is the second process
        result = run_cli(*TINY, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {tmp_path} is in use by pid {os.getpid()} on host {socket.gethostname()}")
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "checkpoints").exists()


def test_a_second_launch_of_a_sweep_cannot_touch_a_job_that_is_still_running(tmp_path):
    sweep = (*TINY, "model.hidden_size=8,12")
    sweep_in_process(tmp_path, *sweep)
    jobs = sorted(path for path in tmp_path.iterdir() if path.is_dir())
    before = {job: (job / "metrics.json").read_bytes() for job in jobs}
    checkpoint = (jobs[1] / "checkpoints" / "last.pt").stat().st_mtime_ns
    with hold_run_dir(jobs[1]), pytest.raises(RunDirBusy, match=str(jobs[1])):  # job 1 "still running"
        sweep_in_process(tmp_path, *sweep)
    assert (jobs[1] / "metrics.json").read_bytes() == before[jobs[1]]  # not retrained, not marked failed
    assert (jobs[1] / "checkpoints" / "last.pt").stat().st_mtime_ns == checkpoint
    assert metrics_of(jobs[0])["status"] == "ok"


def test_two_launches_get_directories_of_their_own():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        first, second = (compose("config", return_hydra_config=True) for _ in range(2))
    for key in ("hydra.run.dir", "hydra.sweep.dir"):
        # Composed within the same second, as two launches from one shell line are.
        assert OmegaConf.select(first, key) != OmegaConf.select(second, key), key


def test_a_full_disk_at_a_checkpoint_is_one_line_leaves_no_temp_file_and_the_last_good_one(tmp_path, monkeypatch):
    train_in_process(tmp_path, *TINY)
    fill_disk_for(monkeypatch, "last.pt")
    with pytest.raises(OSError) as raised:
        train_in_process(tmp_path, *TINY, "trainer.epochs=2", "trainer.resume=true")
    line = one_line(raised.value)
    assert line.startswith(f"cannot write {tmp_path / 'checkpoints' / 'last.pt'}: {NO_SPACE}") and "\n" not in line
    assert temp_files(tmp_path) == []
    assert read_checkpoint(tmp_path / "checkpoints" / "last.pt")["state"]["epoch"] == 1  # still whole


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root; the injection tests above always run")
def test_a_real_full_disk_keeps_the_previous_file_and_no_temp_file(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)]).returncode != 0:
        pytest.skip("this machine does not let even root mount a tmpfs")
    try:
        write_bytes_atomically(disk / "last.pt", b"good")
        with pytest.raises(OSError) as raised:
            write_bytes_atomically(disk / "last.pt", bytes(1 << 20))  # 1 MiB on a 64 KiB disk
        assert raised.value.errno == errno.ENOSPC
        assert one_line(raised.value).startswith(f"cannot write {disk / 'last.pt'}: {NO_SPACE}")
        assert (disk / "last.pt").read_bytes() == b"good" and temp_files(disk) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_during_the_sweep_report_keeps_the_old_report_whole(tmp_path, monkeypatch):
    job = tmp_path / "0_seed=1"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    (tmp_path / "summary.md").write_text("the previous report\n")
    fill_disk_for(monkeypatch, "summary.md")
    with pytest.raises(OSError) as raised:
        write_report(tmp_path)
    assert one_line(raised.value).startswith(f"cannot write {tmp_path / 'summary.md'}: {NO_SPACE}")
    assert (tmp_path / "summary.md").read_text() == "the previous report\n" and temp_files(tmp_path) == []


def test_resume_skips_a_truncated_last_checkpoint_and_says_which_one_it_used(tmp_path, caplog):
    train_in_process(tmp_path, *TINY, "trainer.epochs=2")
    last = tmp_path / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    with caplog.at_level("INFO"):
        metrics = train_in_process(tmp_path, *TINY, "trainer.epochs=3", "trainer.resume=true")
    used = [line for line in caplog.text.splitlines() if "resume: using" in line]
    assert len(used) == 1 and str(last) not in used[0].split(" because ")[0]
    assert f"because {last} is not a seqlab checkpoint, or not a whole one" in used[0]
    assert metrics["status"] == "ok" and metrics["epochs_completed"] == 3


def test_resume_with_no_whole_checkpoint_names_the_files_and_says_to_start_over(tmp_path):
    train_in_process(tmp_path, *TINY)
    for path in (tmp_path / "checkpoints").glob("*.pt"):
        path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError) as raised:
        train_in_process(tmp_path, *TINY, "trainer.epochs=2", "trainer.resume=true")
    line = one_line(raised.value)
    assert "\n" not in line and line.endswith("start over with trainer.resume=false")
    assert str(tmp_path / "checkpoints" / "last.pt") in line and str(tmp_path / "checkpoints" / "best.pt") in line


def test_a_checkpoint_of_an_unknown_format_is_refused_in_one_line(tmp_path):
    train_in_process(tmp_path, *TINY)
    last = tmp_path / "checkpoints" / "last.pt"
    torch.save({**torch.load(last, weights_only=True), "format": 99}, last)
    with pytest.raises(CheckpointError, match="has checkpoint format 99; this seqlab reads formats 1, 2"):
        train_in_process(tmp_path, *TINY, "trainer.epochs=2", "trainer.resume=true")
    assert read_checkpoint(tmp_path / "checkpoints" / "best.pt")["format"] == 2  # what a run writes now


def test_evaluate_on_a_file_that_is_not_a_checkpoint_says_so_in_one_line(tmp_path):
    from src.evaluate import evaluate_checkpoint

    for content in (b"some notes, not a checkpoint", b""):
        notes = tmp_path / "notes.pt"
        notes.write_bytes(content)
        with pytest.raises(CheckpointError) as raised:
            evaluate_checkpoint(notes, "cpu", None, tmp_path / "out")
        line = one_line(raised.value)
        assert line.startswith(f"{notes} is not a seqlab checkpoint") and "\n" not in line
    torch.save({"weights": torch.zeros(2)}, notes)  # a torch file, but not one of ours
    with pytest.raises(CheckpointError, match="is not a seqlab checkpoint"):
        evaluate_checkpoint(notes, "cpu", None, tmp_path / "out")
