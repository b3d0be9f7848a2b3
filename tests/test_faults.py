"""Trust under faults: one writer per run directory, a directory of its own per launch, writes that fail
whole (a full disk), corrupt or foreign checkpoints, degenerate data values."""

import os
import socket

import pytest
from omegaconf import OmegaConf

from conftest import CONF, TINY, metrics_of, run_cli, sweep_in_process
from src.runlock import LOCK_FILE, RunDirBusy, hold_run_dir


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
