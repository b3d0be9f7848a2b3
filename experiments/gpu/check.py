"""Every GPU path of seqlab, one line each (ok, a figure, FAILED with the error, or skipped with why),
within one time budget; results.json and summary.md in OUT. Started by experiments/gpu/check.sh.

    DEVICE=cuda SIZE=full OUT=... WORK=... DATA_ROOT=... BUDGET_S=... python -m experiments.gpu.check
"""

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

from experiments.gpu import plan, report, steps, sweep_steps
from experiments.gpu.steps import Check, Skipped

Step = Callable[[Check, float], tuple[str, dict]]
MIN_LIMIT_S = 5  # a step with less time left than this is not started


def in_process(check: Check, limit: float) -> list[dict]:
    """experiments/gpu/in_process.py's steps (one process, each with its own limit): a line each."""
    args = ["-m", "experiments.gpu.in_process", check.device, check.size.name, str(check.work), check.data_root]
    try:
        code, _, log = steps.run(check, "in_process", args, limit)
        ended = f"exit {code}: {steps.last_line(log)}"
    except TimeoutError as error:
        log, ended = check.out / "logs" / "in_process.log", f"TimeoutError: {error}"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith('{"name"')]
    missing = plan.IN_PROCESS[len(lines) :]
    return lines + [{"name": name, "status": "FAILED", "detail": f"FAILED: not reached ({ended})"} for name in missing]


def plan_of_steps(check: Check) -> list[tuple[str, Step | None, float]]:
    """(name, step, its own time limit in seconds) in the order they run; None: the in-process group."""
    size = check.size
    # The first three pay for a fresh machine's first runs (bytecode, fonts, decoding Fashion-MNIST); none is timed.
    first = [
        ("GPU tests (pytest -m gpu)", steps.gpu_tests, 120),
        ("SIGTERM mid-epoch", steps.stop, 120),
        ("in-process steps", None, 240),
        (f"packed sweep, {size.sweep_jobs} jobs", sweep_steps.packed_sweep, 150),
        ("kernel overlap of packed jobs", sweep_steps.kernel_overlap, 120),
        (f"basic launcher, {size.sweep_jobs} jobs", sweep_steps.basic_sweep, 180),
    ]
    rates = [
        (f"throughput, {n} packed job{'s' if n > 1 else ''}", sweep_steps.throughput(n), 90)
        for n in size.throughput_jobs
    ]
    return first + rates + [("pruned study, packed", sweep_steps.study, 150)]


def run_step(check: Check, name: str, step: Step | None, own_limit: float) -> list[dict]:
    limit = min(own_limit, check.deadline - time.monotonic())
    if limit < MIN_LIMIT_S:
        return [{"name": name, "status": "FAILED", "detail": "FAILED: not run, the check's time budget is spent"}]
    if step is None:
        return in_process(check, limit)
    try:
        detail, figures = step(check, limit)
        return [{"name": name, "status": "ok", "detail": detail, "figures": figures}]
    except Skipped as reason:
        return [{"name": name, "status": "skipped", "detail": f"skipped: {reason}"}]
    except Exception as error:  # a failed step is a line of the report; the next step still runs
        return [{"name": name, "status": "FAILED", "detail": f"FAILED: {steps.first_line(error)}"}]


def main() -> int:
    started = time.monotonic()
    out, work = Path(os.environ["OUT"]), Path(os.environ["WORK"])
    device, size_name = os.environ.get("DEVICE", "cuda"), os.environ.get("SIZE", "full")
    data_root = os.environ["DATA_ROOT"]
    budget = float(os.environ.get("BUDGET_S", "470"))
    check = Check(device, plan.size(size_name, data_root), out, work, sys.executable, data_root, started + budget)
    header = report.header(device, size_name)
    print(f"{header['machine']}; torch {header['torch']}; {size_name} size on {device}", flush=True)
    results: list[dict] = []
    for name, step, own_limit in plan_of_steps(check):
        step_started, cpu_before = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
        done = run_step(check, name, step, own_limit)
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # the step's processes' CPU seconds
        cpu = cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
        for result in done:
            result.setdefault("seconds", round((time.monotonic() - step_started) / len(done), 1))
            result["cpu_s"] = round(cpu / len(done), 1) + 0.0  # no -0.0
            print(f"{result['name']}: {result['detail']}", flush=True)
        results += done
        report.write(out, header, results, time.monotonic() - started)  # a check stopped midway keeps its lines
    counts = report.counts(results)
    print(f"{counts['ok']} passed, {counts['FAILED']} failed, {counts['skipped']} skipped in "
          f"{time.monotonic() - started:.0f} s; {out}/summary.md")  # fmt: skip
    return 1 if counts["FAILED"] else 0


if __name__ == "__main__":
    sys.exit(main())
