"""Print the overrides of the best sweep job of one problem: highest validation accuracy, then highest best
validation accuracy, then the smaller model. The test set plays no part.

    python experiments/timeseries/choose.py outputs/multirun/timeseries_sweep/summary.csv GunPoint
"""

import csv
import sys

CHOSEN = ("optimizer.lr", "model.hidden_size")


def choose(summary_csv: str, problem: str) -> str:
    rows = [
        row
        for row in csv.DictReader(open(summary_csv))
        if row["status"] == "ok" and f"data.name={problem}" in row["overrides"].split()
    ]
    if not rows:
        sys.exit(f"error: no finished job of {problem} in {summary_csv}")

    def settings(row: dict) -> dict[str, str]:
        pairs = (o.partition("=") for o in row["overrides"].split())
        return {key: value for key, _, value in pairs if key in CHOSEN}

    best = max(
        rows, key=lambda r: (float(r["val_acc"]), float(r["best_val_acc"]), -int(settings(r)["model.hidden_size"]))
    )
    return " ".join(f"{key}={value}" for key, value in settings(best).items())


if __name__ == "__main__":
    print(choose(sys.argv[1], sys.argv[2]))
