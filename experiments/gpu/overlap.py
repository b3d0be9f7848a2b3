"""Kernels of a torch.profiler Chrome trace, which job's thread launched each, and how many pairs of
kernels launched by different threads ran at the same time on the GPU.

A kernel event carries its stream and a correlation id; the CUDA runtime call that launched it (a kernel
launch, or a whole CUDA graph's launch) carries the same id and the launching thread. The jobs of a
packed sweep are threads of one process, so kernels of different threads are kernels of different jobs.
On a CPU trace (no kernels) the CPU operators stand in, grouped by their own thread: the same counting.
"""

import heapq
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

KERNEL = "kernel"
LAUNCHES = ("cuda_runtime", "cuda_driver")  # where the launching thread of a kernel is recorded
CPU_OP = "cpu_op"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Interval:
    name: str
    start: float  # microseconds, as the trace has them
    end: float
    stream: str  # the CUDA stream, or the thread for CPU operators
    thread: str  # the thread that launched it (the job)


def read_trace(path: Path) -> list[dict]:
    data = json.loads(path.read_text())
    return data["traceEvents"] if isinstance(data, dict) else data


def intervals(events: list[dict]) -> tuple[list[Interval], str]:
    """The kernels of a trace, or its CPU operators where it has no kernels; and which of the two."""
    complete = [e for e in events if e.get("ph") == "X" and "dur" in e]
    launcher = {
        e["args"]["correlation"]: str(e.get("tid"))
        for e in complete
        if e.get("cat") in LAUNCHES and "correlation" in e.get("args", {})
    }
    kernels = [e for e in complete if e.get("cat") == KERNEL]
    if kernels:
        return [
            Interval(
                name=e["name"],
                start=float(e["ts"]),
                end=float(e["ts"]) + float(e["dur"]),
                stream=str(e.get("args", {}).get("stream", e.get("tid"))),
                thread=launcher.get(e.get("args", {}).get("correlation"), UNKNOWN),
            )
            for e in kernels
        ], "kernels"
    cpu = [e for e in complete if e.get("cat") == CPU_OP]
    return [
        Interval(e["name"], float(e["ts"]), float(e["ts"]) + float(e["dur"]), str(e.get("tid")), str(e.get("tid")))
        for e in cpu
    ], "cpu operators"


def overlapping_pairs(spans: list[Interval], key: str) -> int:
    """Pairs of intervals whose `key` (stream or thread) differs and whose [start, end) intersect."""
    active: list[tuple[float, str]] = []  # (end, group) of the intervals begun and not yet ended
    per_group: Counter[str] = Counter()
    pairs = 0
    for span in sorted(spans, key=lambda s: s.start):
        while active and active[0][0] <= span.start:
            _, group = heapq.heappop(active)
            per_group[group] -= 1
        group = getattr(span, key)
        pairs += len(active) - per_group[group]
        heapq.heappush(active, (span.end, group))
        per_group[group] += 1
    return pairs


def kernel_table(spans: list[Interval], rows: int = 25) -> str:
    """The kernels (or operators) by total time: calls, total and mean microseconds, share of the total."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for span in spans:
        totals[span.name][0] += 1
        totals[span.name][1] += span.end - span.start
    whole = sum(total for _, total in totals.values()) or 1.0
    lines = ["| name | calls | total us | mean us | share |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, (calls, total) in sorted(totals.items(), key=lambda item: -item[1][1])[:rows]:
        short = name if len(name) <= 90 else name[:87] + "..."
        lines.append(f"| `{short}` | {calls} | {total:.0f} | {total / calls:.1f} | {100 * total / whole:.1f}% |")
    return "\n".join(lines)


def summary(spans: list[Interval], kind: str) -> dict:
    """The figures of a trace: how many kernels, streams and launching threads, and overlapping pairs."""
    return {
        "kind": kind,
        "count": len(spans),
        "streams": len({s.stream for s in spans}),
        "threads": len({s.thread for s in spans}),
        "unattributed": sum(s.thread == UNKNOWN for s in spans),  # no launch with their correlation in the trace
        "pairs_across_threads": overlapping_pairs(spans, "thread"),
        "pairs_across_streams": overlapping_pairs(spans, "stream"),
    }
