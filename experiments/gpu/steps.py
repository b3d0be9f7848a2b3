"""The GPU check's steps that start `python -m src.run` (or a helper) as a user would, one process each.

Each step returns its line's text and figures, raises Skipped with the reason it does not apply here, or
raises any other error, which the check reports as FAILED with its first line.
"""

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from experiments.gpu import plan, sweep_logs

ROOT = Path(__file__).resolve().parents[2]


class Skipped(Exception):
    """The step does not apply on this machine (the reason is the message)."""


@dataclass
class Check:
    device: str
    size: plan.Size
    out: Path  # the record: results.json, summary.md, kernels.txt, logs/
    work: Path  # the runs' directories (checkpoints, TensorBoard files): not part of the record
    python: str
    data_root: str
    deadline: float  # time.monotonic() by which every step must be done
    figures: dict = field(default_factory=dict)  # what later steps compare with (the packed sweep, one job)

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


def run(check: Check, name: str, args: list[str], limit: float) -> tuple[int, float, Path]:
    """`python ARGS` from the project root, its output in logs/NAME.log: (exit status, wall seconds, log)."""
    log = check.out / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with log.open("w") as output:
        process = subprocess.Popen(
            [check.python, *args], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            code = process.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the process and whatever it started
            process.wait()
            raise TimeoutError(f"over its {limit:.0f} s (log: {log})") from None
    return code, time.monotonic() - started, log


def first_line(error: BaseException) -> str:
    """An error as one line: its type and the first line of its message."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


def succeeded(code: int, log: Path) -> None:
    if code != 0:
        raise RuntimeError(f"exit {code}: {last_line(log)}")


def src_run(check: Check, name: str, overrides: tuple[str, ...], limit: float, sweep: bool = False) -> float:
    """`python -m src.run [-m] OVERRIDES` into WORK/NAME; its wall seconds (an error if it failed)."""
    where = f"hydra.{'sweep' if sweep else 'run'}.dir={check.work / name}"
    code, wall, log = run(check, name, ["-m", "src.run", *(["-m"] if sweep else []), *overrides, where], limit)
    succeeded(code, log)
    return wall


def gpu_tests(check: Check, limit: float) -> tuple[str, dict]:
    """The tests marked gpu (pytest -m gpu): the graph step against eager steps, and the rest."""
    if not check.cuda:
        raise Skipped("no CUDA")
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py") if "mark.gpu" in p.read_text())
    code, _, log = run(check, "gpu_tests", ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu", *files], limit)
    outcome = last_line(log)
    succeeded(code, log)
    if "skipped" in outcome:
        raise RuntimeError(f"GPU tests skipped on a GPU: {outcome}")
    return f"ok, {outcome.strip('= ')}", {"pytest": outcome}


def sweep(check: Check, name: str, jobs: int, launcher: tuple[str, ...], limit: float) -> tuple[float, dict]:
    """The size's job over seeds 0..jobs-1 under a launcher: (wall seconds, metrics by job number)."""
    overrides = (*check.size.job, *plan.on(check.device), f"seed=range(0,{jobs})", *launcher)
    wall = src_run(check, name, overrides, limit, sweep=True)
    found = sweep_logs.job_metrics(check.work / name)
    if len(found) != jobs or any(m.get("status") != "ok" for m in found.values()):
        raise RuntimeError(f"{len(found)} of {jobs} jobs ran: {sweep_logs.statuses(found)}")
    return wall, found


def stop(check: Check, limit: float) -> tuple[str, dict]:
    """SIGTERM to a single run mid-epoch, once its step is a CUDA graph (on a GPU): exit 143 and a checkpoint.
    The next step resumes it and compares it with the same run uninterrupted."""
    run_dir = check.work / "stopped"
    overrides = (*check.size.stop, *plan.on(check.device), plan.graph_step(check.device), f"hydra.run.dir={run_dir}")
    # After capture the rest of the epoch takes about 0.3 s on an H100: poll the log often.
    trigger = "captured in a CUDA graph" if check.cuda else "epoch 0:"
    log = check.out / "logs" / "stop.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + limit
    with log.open("w") as output:
        process = subprocess.Popen(
            [check.python, "-m", "src.run", *overrides], cwd=ROOT, stdout=output, stderr=subprocess.STDOUT
        )
        run_log = run_dir / "run.log"
        while process.poll() is None and time.monotonic() < deadline:
            if run_log.is_file() and trigger in run_log.read_text(errors="replace"):
                break
            time.sleep(0.005)  # polling for the event (the log line), not a fixed wait
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=max(deadline - time.monotonic(), 1))
        except subprocess.TimeoutExpired:
            process.kill()
            raise TimeoutError(f"no exit after SIGTERM within its {limit:.0f} s (log: {log})") from None
    line = last_line(log)
    if code != 128 + signal.SIGTERM or "stopped by SIGTERM" not in line:
        raise RuntimeError(f"exit {code}, expected 143: {line}")
    return f"exit 143, {line.removeprefix('error: ').split(';')[0]}", {"line": line}
