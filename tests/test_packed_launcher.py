"""The packed launcher: Hydra's launcher conformance suites, then concurrency, logs and failures."""

import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import (
    BatchedSweeperTestSuite,
    IntegrationTestSuite,
    LauncherTestSuite,
)
from hydra.test_utils.test_utils import TSweepRunner
from omegaconf import DictConfig

from src.sweeps import packing

TWO_PER_DEVICE = "hydra.launcher.jobs_per_device=2"


@pytest.fixture(autouse=True)
def unset_version_base():
    """Hydra's suites assume no version_base was ever set; other tests compose with version_base 1.3,
    which Hydra keeps in a process-wide singleton."""
    from hydra.core.singleton import Singleton
    from hydra.version import VersionBase

    saved = Singleton._instances.pop(VersionBase, None)
    yield
    if saved is not None:
        Singleton._instances[VersionBase] = saved


PACKED = ["hydra/launcher=packed", TWO_PER_DEVICE]
WAIT_S = 30  # a barrier's limit, reached only when the jobs do not run at once


def test_discovery() -> None:
    assert "PackedLauncher" in [x.__name__ for x in Plugins.instance().discover(Launcher)]


@pytest.mark.parametrize("launcher_name, overrides", [("packed", [TWO_PER_DEVICE])])
class TestPackedLauncher(LauncherTestSuite):
    pass


@pytest.mark.parametrize("launcher_name, overrides", [("packed", [TWO_PER_DEVICE, "hydra.sweeper.max_batch_size=2"])])
class TestPackedLauncherBatched(BatchedSweeperTestSuite):
    pass


@pytest.mark.parametrize("task_launcher_cfg, extra_flags", [({}, ["-m", *PACKED])])
class TestPackedLauncherIntegration(IntegrationTestSuite):
    pass


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch) -> list[JobReturn]:
    """Every JobReturn the packed launcher hands back, kept even when the sweeper then raises."""
    returns: list[JobReturn] = []
    launch = packing.PackedLauncher.launch

    def keep(self: packing.PackedLauncher, job_overrides: Any, initial_job_idx: int) -> Any:
        result = launch(self, job_overrides, initial_job_idx)
        returns.extend(result)
        return result

    monkeypatch.setattr(packing.PackedLauncher, "launch", keep)
    return returns


def sweep(runner: TSweepRunner, task: Any, tmp_path: Path, *overrides: str) -> Any:
    """A multirun of task over Hydra's test config {foo: 10, bar: 100} with the packed launcher."""
    # Hydra's test runner defaults to the legacy hydra.job.chdir=true, which runs jobs one at a time.
    return runner(
        calling_file=None,
        calling_module="hydra.test_utils.a_module",
        task_function=task,
        config_path="configs",
        config_name="compose.yaml",
        overrides=[*PACKED, "hydra.job.chdir=false", *overrides],
        temp_dir=tmp_path,
    )


@pytest.mark.usefixtures("hydra_restore_singletons")
def test_jobs_overlap_and_keep_their_own_config_and_log(hydra_sweep_runner: TSweepRunner, tmp_path: Path) -> None:
    both_started = threading.Barrier(2, timeout=WAIT_S)
    both_logged = threading.Barrier(2, timeout=WAIT_S)

    def task(cfg: DictConfig) -> dict:
        start = time.monotonic()
        both_started.wait()  # passes only if the other job is running too
        num = HydraConfig.get().job.num
        for line in range(3):
            logging.getLogger("packed_test").info(f"job {num} a={cfg.a} line {line}")
        both_logged.wait()  # both jobs have logged before either log file is closed
        return {"num": num, "start": start, "end": time.monotonic()}

    with sweep(hydra_sweep_runner, task, tmp_path, "+a=0,1") as result:
        jobs = result.returns[0]
        assert [job.status for job in jobs] == [JobStatus.COMPLETED] * 2
        values = [job.return_value for job in jobs]
        assert max(value["start"] for value in values) < min(value["end"] for value in values)
        for job, value in zip(jobs, values, strict=True):
            hydra = job.hydra_cfg.hydra
            assert value["num"] == hydra.job.num
            lines = (Path(hydra.runtime.output_dir) / f"{hydra.job.name}.log").read_text().splitlines()
            assert [line.split(" - ")[1] for line in lines] == [
                f"job {hydra.job.num} a={job.cfg.a} line {line}" for line in range(3)
            ]
    assert type(HydraConfig.instance()) is HydraConfig  # the launching thread's singleton is back


@pytest.mark.usefixtures("hydra_restore_singletons")
def test_a_failing_job_fails_alone(hydra_sweep_runner: TSweepRunner, tmp_path: Path, launched: list[JobReturn]) -> None:
    def task(cfg: DictConfig) -> int:
        if cfg.a == 1:
            raise RuntimeError("job a=1 broke")
        return cfg.a * 10

    with pytest.raises(RuntimeError, match="job a=1 broke"):  # the sweeper raises once the batch is back
        with sweep(hydra_sweep_runner, task, tmp_path, "+a=0,1,2"):
            pass
    assert [job.status for job in launched] == [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.COMPLETED]
    assert [launched[0].return_value, launched[2].return_value] == [0, 20]


APP = """
import hydra

@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg) -> None:
    print("job ran")

if __name__ == "__main__":
    main()
"""


def test_jobs_per_device_below_one_is_refused_before_any_job(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    command = [sys.executable, "app.py", "-m", "hydra/launcher=packed", "hydra.launcher.jobs_per_device=0"]
    command += ["+a=0,1", "hydra.sweep.dir=sweep"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode != 0
    assert done.stderr.splitlines() == [
        "error: hydra.launcher.jobs_per_device=0 is not allowed: expected an integer >= 1, or null for 8 per GPU"
        " and 1 on a CPU"
    ]
    assert "job ran" not in done.stdout
    assert not (tmp_path / "sweep").exists()
