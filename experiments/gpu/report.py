"""The GPU check's record: which machine and torch, and every step's line, as results.json and summary.md."""

import datetime
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

KERNEL_ROWS = 12  # of kernels.txt, shown in summary.md


def machine(device: str) -> str:
    """The GPU's name (nvidia-smi) on a CUDA run, else the CPU's model and cores."""
    if device.startswith("cuda"):
        try:
            found = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=30, check=True,
            )  # fmt: skip
            return "; ".join(found.stdout.strip().splitlines()) + f"; {os.cpu_count()} CPU cores"
        except (OSError, subprocess.SubprocessError) as error:
            return f"a CUDA machine (nvidia-smi: {type(error).__name__})"
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor() or "unknown CPU",
    )
    return f"{model}, {os.cpu_count()} cores"


def torch_version() -> str:
    """torch's version, read without importing torch (this process stays light)."""
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "not installed"


def header(device: str, size: str) -> dict:
    return {
        "machine": machine(device),
        "torch": torch_version(),
        "python": platform.python_version(),
        "device": device,
        "size": size,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def counts(results: list[dict]) -> dict[str, int]:
    found = {"ok": 0, "FAILED": 0, "skipped": 0}
    for result in results:
        found[result["status"]] += 1
    return found


def write(out: Path, head: dict, results: list[dict], wall: float) -> None:
    """results.json (every figure) and summary.md (the lines, and the top of the kernel table)."""
    out.mkdir(parents=True, exist_ok=True)
    record = {**head, "wall_s": round(wall, 1), **counts(results), "steps": results}
    (out / "results.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    rows = [
        f"| {r['name']} | {r['status']} | {r['detail'].replace('|', '/')} | {r['seconds']} | {r.get('cpu_s', '')} |"
        for r in results
    ]
    tally = counts(results)
    lines = [
        f"# GPU check, {head['date']}",
        "",
        f"Machine: {head['machine']}. torch {head['torch']}, Python {head['python']}; "
        f"`DEVICE={head['device']} SIZE={head['size']} bash experiments/gpu/check.sh`, {wall:.0f} s in all.",
        "",
        f"**{tally['ok']} passed, {tally['FAILED']} failed, {tally['skipped']} skipped.**",
        "",
        "| step | status | line | seconds | CPU seconds |",
        "| --- | --- | --- | ---: | ---: |",
        *rows,
    ]
    kernels = out / "kernels.txt"
    if kernels.is_file():
        table = kernels.read_text().splitlines()
        lines += ["", f"Profiler trace, top of `kernels.txt`: {table[0]}", "", *table[2 : 4 + KERNEL_ROWS]]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
