"""The ablation table: test accuracy (mean ± std over seeds) per problem and variant, from each variant's sweep
report (summary.csv); ablations.md here.

    python experiments/timeseries/ablations.py outputs/ablations
"""

import csv
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = {
    "published": "LSTM-FCN as published",
    "no_branch_128": "LSTM 128 alone",
    "attention": "attention head",
    "shuffle": "dimension shuffle",
    "four_fifths": "trained on 4/5",
}


def accuracies(summary: Path) -> dict[str, list[float]]:
    """Finished runs' test accuracies by problem."""
    found: dict[str, list[float]] = {}
    for row in csv.DictReader(summary.open()):
        if row["status"] == "ok":
            problem = next(o.split("=", 1)[1] for o in row["overrides"].split() if o.startswith("data.name="))
            found.setdefault(problem, []).append(float(row["test_acc"]))
    return found


def main(out: Path) -> None:
    found = [name for name in VARIANTS if (out / name / "summary.csv").is_file()]
    table = {name: accuracies(out / name / "summary.csv") for name in found}
    problems = sorted({problem for found in table.values() for problem in found})
    lines = ["| problem | " + " | ".join(VARIANTS[name] for name in table) + " |", "| --- |" + " ---: |" * len(table)]
    for problem in problems:
        cells = []
        for found in table.values():
            values = found.get(problem, [])
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.fmean(values):.3f} ± {spread:.3f} ({len(values)})" if values else "-")
        lines.append(f"| {problem} | " + " | ".join(cells) + " |")
    (HERE / "ablations.md").write_text("\n".join(lines) + "\n")
    print((HERE / "ablations.md").read_text(), end="")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
