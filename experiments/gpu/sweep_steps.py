"""The GPU check's sweeps: packed against basic, packed throughput of 1 to 16 jobs, the kernels of packed
jobs overlapping under the profiler, and the pruned study with trials in flight on the packed launcher."""

import json
import shutil
from collections.abc import Callable

from experiments.gpu import plan, sweep_logs
from experiments.gpu.steps import Check, Skipped, last_line, run, src_run, succeeded, sweep

PACKED = ("hydra/launcher=packed",)
# Largest test-accuracy gap allowed between a packed job and the same job under the basic launcher: kernels'
# rounding moves 2 epochs' accuracy by tenths of a point; a job that read half-copied data would be far off.
ACC_GAP = 0.02


def per_device(jobs: int | None) -> tuple[str, ...]:
    """The packed launcher's jobs at once on each device, where the step sets it."""
    return (f"hydra.launcher.jobs_per_device={jobs}",) if jobs else ()


def packed_sweep(check: Check, limit: float) -> tuple[str, dict]:
    """The 16-job sweep with the packed launcher: 8 jobs at a time on the GPU, each on its own stream."""
    size = check.size
    wall, jobs = sweep(check, "packed", size.sweep_jobs, (*PACKED, *per_device(size.jobs_per_device)), limit)
    check.figures["packed"] = (wall, {num: m["test_acc"] for num, m in jobs.items()})
    check.figures["packed_sweep"] = (size.sweep_jobs, size.jobs_per_device)  # what throughput may reuse
    at_once = size.jobs_per_device or ("8 per GPU" if check.cuda else "1 on a CPU")
    return f"ok, {len(jobs)} jobs in {wall:.1f} s ({at_once} at a time)", {"wall_s": wall}


def basic_sweep(check: Check, limit: float) -> tuple[str, dict]:
    """The same sweep with Hydra's basic launcher (one job after another): packed's speed-up, and the
    packed jobs' accuracies against these (jobs reading shared data before it was on the GPU would not learn)."""
    wall, jobs = sweep(check, "basic", check.size.sweep_jobs, (), limit)
    if "packed" not in check.figures:
        return f"{wall:.1f} s (no packed sweep to compare with)", {"wall_s": wall}
    packed_wall, packed_acc = check.figures["packed"]
    gap = max(abs(packed_acc[num] - m["test_acc"]) for num, m in jobs.items())
    figures = {"wall_s": wall, "packed_speedup": wall / packed_wall, "largest_acc_gap": gap}
    if gap > ACC_GAP:
        raise AssertionError(f"a packed job's test accuracy is {gap:.4f} from the same job's alone: {figures}")
    speed = f"packed ran it {wall / packed_wall:.2f}x as fast"
    return f"{wall:.1f} s; {speed}; packed jobs' test accuracies within {gap:.4f} of these", figures


def throughput(jobs: int) -> Callable[[Check, float], tuple[str, dict]]:
    """Aggregate training samples/s of `jobs` packed jobs started together."""

    def step(check: Check, limit: float) -> tuple[str, dict]:
        name = f"together_{jobs}"
        if check.figures.get("packed_sweep") == (jobs, jobs):  # this very command ran as the packed sweep
            name = "packed"
        else:
            sweep(check, name, jobs, (*PACKED, *per_device(jobs)), limit)
        samples, span = sweep_logs.throughput(check.work / name)
        rate = samples / max(span, 0.001)  # the log's clock has millisecond steps
        check.figures.setdefault("throughput", {})[jobs] = rate
        one = check.figures["throughput"].get(1)
        against = f", {rate / one:.1f}x one job's" if one and jobs > 1 else ""
        return f"{rate:,.0f} samples/s ({samples:,.0f} samples in {span:.1f} s{against})", {"samples_per_s": rate}

    step.__name__ = f"throughput_{jobs}"
    return step


def kernel_overlap(check: Check, limit: float) -> tuple[str, dict]:
    """torch.profiler over a packed run: pairs of kernels launched by different jobs that ran at once."""
    if not check.cuda:
        raise Skipped("no CUDA")
    jobs, folder = check.size.profile_jobs, check.work / "profile"
    overrides = [*check.size.profile, *plan.on(check.device), f"seed=range(0,{jobs})", *PACKED, *per_device(jobs)]
    overrides.append(f"hydra.sweep.dir={check.work / 'profiled'}")
    code, _, log = run(
        check, "kernel_overlap", ["-m", "experiments.gpu.profile_packed", str(folder), *overrides], limit
    )
    succeeded(code, log)
    found = [line for line in log.read_text().splitlines() if line.startswith('{"kind"')]
    if not found:
        raise RuntimeError(f"no figures in the profiler's output: {last_line(log)}")
    figures = json.loads(found[-1])
    shutil.move(folder / "kernels.txt", check.out / "kernels.txt")
    by_thread = figures["unattributed"] < figures["count"]  # else the trace lacks the launches: count streams
    pairs = figures["pairs_across_threads" if by_thread else "pairs_across_streams"]
    text = (
        f"{pairs:,} overlapping pairs of kernels "
        + ("from different jobs" if by_thread else "on different streams (the trace names no launching threads)")
        + f" ({figures['count']:,} kernels, {figures['streams']} streams, {figures['threads']} launching threads)"
    )
    if pairs == 0:
        raise AssertionError(f"no kernels of different jobs overlapped: {text}")
    return text, figures


def study_overrides(size: plan.Size, device: str) -> tuple[str, ...]:
    """The pruned study's command: hparams_search=pruned, trials in flight on the packed launcher."""
    return (
        "hparams_search=pruned", *size.study, *plan.on(device), *PACKED,
        f"hydra.sweeper.n_jobs={size.study_in_flight}", f"hydra.sweeper.n_trials={size.study_trials}",
        *([] if device.startswith("cuda") else per_device(size.study_in_flight)),
    )  # fmt: skip


def study(check: Check, limit: float) -> tuple[str, dict]:
    """The pruned study (hydra/sweeper=study) with trials in flight on the packed launcher."""
    overrides = study_overrides(check.size, check.device)
    size = check.size
    wall = src_run(check, "study", overrides, limit, sweep=True)
    trials = sweep_logs.job_metrics(check.work / "study")
    if len(trials) < size.study_trials:
        raise RuntimeError(f"{len(trials)} of {size.study_trials} trials ran: {sweep_logs.statuses(trials)}")
    text = f"ok, {len(trials)} trials ({sweep_logs.statuses(trials)}) in {wall:.1f} s, {size.study_in_flight} in flight"
    return text, {"wall_s": wall, "trials": len(trials)}
