"""The GPU check (experiments/gpu/check.sh) dry-runs on the CPU: every step at tiny size ends ok, with a
figure, or with an allowed skip, and writes its record; the full size's commands compose; the profiler's
kernels are counted right."""

import json
import os
import subprocess

import pytest

from conftest import ROOT, compose_config, write_idx
from experiments.gpu import check, overlap, plan, sweep_steps
from experiments.gpu.steps import Check
from src.config.schema import validate

ALLOWED_SKIPS = {"skipped: no CUDA"}


def test_the_dry_run_reaches_every_step_on_a_cpu_and_writes_the_record(tmp_path):
    environment = {
        **os.environ,
        "DEVICE": "cpu",
        "SIZE": "tiny",
        "OUT": str(tmp_path / "out"),
        "SCRATCH": str(tmp_path / "scratch"),
        "FASHION_DIR": str(write_idx(tmp_path / "fashion")),  # 600 training images: decoded in an instant
    }
    done = subprocess.run(
        ["bash", "experiments/gpu/check.sh"], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300
    )
    record = json.loads((tmp_path / "out" / "results.json").read_text())
    lines = done.stdout.splitlines()
    for step in record["steps"]:
        assert f"{step['name']}: {step['detail']}" in lines  # one line each, as printed
        assert step["status"] == "ok" or step["detail"] in ALLOWED_SKIPS, (step, done.stderr[-2000:])
    assert done.returncode == 0 and record["FAILED"] == 0
    assert {"skipped: no CUDA"} <= {s["detail"] for s in record["steps"] if s["status"] == "skipped"}
    planned = check.plan_of_steps(Check("cpu", plan.size("tiny", ""), tmp_path, tmp_path, "", "", 0.0))
    names = [n for name, step, _ in planned for n in ([name] if step else plan.IN_PROCESS)]
    assert [step["name"] for step in record["steps"]] == names  # none lost, the in-process ones one by one
    assert lines[-1].startswith(f"{record['ok']} passed, 0 failed, {record['skipped']} skipped")
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert record["torch"] in summary and "cores" in summary and summary.count("| ok |") == record["ok"]
    assert not list((tmp_path / "scratch").glob("work.*"))  # the runs' directories are removed


@pytest.mark.parametrize("name", ["fashion", "job", "profile", "stop", "bf16", "api", "study"])
def test_every_command_of_the_full_size_composes_and_validates(name):
    size = plan.size("full", "data/fashion_mnist")
    overrides = (*getattr(size, name), *plan.on("cuda"))
    if name == "stop":
        overrides += (plan.graph_step("cuda"),)
    if name == "study" and (study := sweep_steps.study_overrides(size, "cuda")):
        overrides = study  # the preset, the packed launcher, trials in flight: Hydra's keys too
    cfg = compose_config(*overrides)
    validate(cfg)  # a typo or a value out of range in a command the CPU never runs
    assert cfg.trainer.device == "cuda"  # and the command is the GPU's, not the CPU defaults


def span(stream: str, thread: str, start: float, end: float, name: str = "k") -> overlap.Interval:
    return overlap.Interval(name, start, end, stream, thread)


def test_overlapping_pairs_count_only_different_groups_that_run_at_once():
    spans = [
        span("7", "job0", 0, 10),
        span("7", "job0", 10, 20),  # touches the first, does not overlap it
        span("9", "job1", 5, 15),  # overlaps both of job0's
        span("8", "job0", 12, 14),  # job0 again, on a second stream: overlaps job0's second and job1's
        span("9", "job1", 30, 40),  # alone
    ]
    assert overlap.overlapping_pairs(spans, "thread") == 3
    assert overlap.overlapping_pairs(spans, "stream") == 4
    assert overlap.overlapping_pairs(spans[:2] + spans[4:], "thread") == 0


def event(cat: str, name: str, tid: int, ts: float, dur: float, **args: int) -> dict:
    """One complete event of a Chrome trace as torch.profiler writes it."""
    return {"ph": "X", "cat": cat, "name": name, "tid": tid, "ts": ts, "dur": dur, "args": args}


def test_kernels_are_credited_to_the_thread_whose_launch_shares_their_correlation():
    events = [
        event("cuda_runtime", "cudaGraphLaunch", 11, 0, 1, correlation=1),  # job thread 11 replays a graph
        event("cuda_runtime", "cudaLaunchKernel", 22, 0, 1, correlation=2),  # job thread 22 launches a kernel
        event("kernel", "gemm", 7, 2, 10, stream=7, correlation=1),
        event("kernel", "gemm", 7, 12, 10, stream=7, correlation=1),
        event("kernel", "lstm", 9, 5, 4, stream=9, correlation=2),
        event("cpu_op", "aten::mm", 11, 0, 30),
    ]
    spans, kind = overlap.intervals(events)
    assert kind == "kernels"
    assert sorted((s.name, s.thread) for s in spans) == [("gemm", "11"), ("gemm", "11"), ("lstm", "22")]
    assert overlap.summary(spans, kind) == {
        "kind": "kernels", "count": 3, "streams": 2, "threads": 2, "unattributed": 0,
        "pairs_across_threads": 1, "pairs_across_streams": 1,
    }  # fmt: skip
    table = overlap.kernel_table(spans).splitlines()
    assert table[2] == "| `gemm` | 2 | 20 | 10.0 | 83.3% |" and len(table) == 4
    cpu_spans, cpu_kind = overlap.intervals(events[-1:])
    assert cpu_kind == "cpu operators" and cpu_spans[0].thread == "11"
