"""The study's comparison: test accuracy per problem and model (mean ± std over seeds, from src.sweeps.report's
summary.csv) beside the archive's published 1NN-DTW and ROCKET accuracies; comparison.md and comparison.png.

    python experiments/timeseries/compare.py outputs/multirun/timeseries/summary.csv experiments/timeseries
"""

import csv
import statistics
import sys
from pathlib import Path

# Published test accuracies on the same splits: Middlehurst et al. 2024 ("Bake off redux", univariate),
# Ruiz et al. 2021 (BasicMotions; its 1NN-DTW figure is DTW-D). None: no published figure.
PUBLISHED = {
    "ArrowHead": (0.703, 0.823),
    "GunPoint": (0.907, 1.000),
    "ItalyPowerDemand": (0.950, 0.970),
    "OSULeaf": (0.591, 0.942),
    "ACSF1": (0.640, 0.880),
    "BasicMotions": (0.975, 1.000),
    "PickupGestureWiimoteZ": (None, 0.830),
    "JapaneseVowels": (None, None),
}
MODELS = ("gru", "gru bi", "lstm", "lstm bi")


def grouped(summary_csv: Path) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """(val_acc, test_acc) of every finished job, by problem and model."""
    groups: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for row in csv.DictReader(summary_csv.open()):
        if row["status"] != "ok":
            continue
        settings = dict(o.partition("=")[::2] for o in row["overrides"].split())
        model = settings["model"] + (" bi" if settings["model.bidirectional"].lower() == "true" else "")
        groups.setdefault(settings["data.name"], {}).setdefault(model, []).append(
            (float(row["val_acc"]), float(row["test_acc"]))
        )
    return groups


def spread(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def table(groups: dict) -> list[str]:
    """One row per problem: each model's test accuracy, the model validation picks, and the published pair."""
    lines = [
        "| problem | " + " | ".join(MODELS) + " | picked on val | 1NN-DTW | ROCKET |",
        "| --- |" + " ---: |" * (len(MODELS) + 3),
    ]
    for problem, (dtw, rocket) in PUBLISHED.items():
        models = groups.get(problem, {})
        cells = [spread([test for _, test in models[m]]) if m in models else "-" for m in MODELS]
        picked = max(models, key=lambda m: statistics.fmean(val for val, _ in models[m])) if models else None
        chosen = f"{picked}: {spread([test for _, test in models[picked]])}" if picked else "-"
        published = [f"{v:.3f}" if v is not None else "-" for v in (dtw, rocket)]
        lines.append(f"| {problem} | " + " | ".join(cells) + f" | {chosen} | " + " | ".join(published) + " |")
    return lines


def draw(groups: dict, path: Path) -> None:
    """Bars: each model's mean test accuracy (std as whiskers); marks: 1NN-DTW and ROCKET."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    problems = list(PUBLISHED)
    figure, axis = pyplot.subplots(figsize=(12, 4.5))
    width = 0.8 / len(MODELS)
    for k, model in enumerate(MODELS):
        means = [statistics.fmean(t for _, t in groups.get(p, {}).get(model, [(0, 0)])) for p in problems]
        stds = [statistics.pstdev([t for _, t in groups.get(p, {}).get(model, [(0, 0)])]) for p in problems]
        axis.bar([i - 0.4 + (k + 0.5) * width for i in range(len(problems))], means, width, yerr=stds, label=model)
    for column, (marker, name) in enumerate((("k_", "1NN-DTW"), ("r*", "ROCKET"))):
        points = [(i, PUBLISHED[p][column]) for i, p in enumerate(problems) if PUBLISHED[p][column] is not None]
        axis.plot(*zip(*points, strict=True), marker, markersize=14, mew=2, linestyle="none", label=name)
    axis.set_xticks(range(len(problems)), problems, rotation=20)
    axis.set(
        ylabel="test accuracy", ylim=(0.3, 1.02), title="Recurrent classifiers against published 1NN-DTW and ROCKET"
    )
    axis.legend(ncol=6, fontsize=8, loc="lower left")
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def main(summary_csv: Path, out_dir: Path) -> None:
    groups = grouped(summary_csv)
    seeds = max((len(runs) for models in groups.values() for runs in models.values()), default=0)
    lines = [
        f"Test accuracy, mean ± std over {seeds} seeds; `picked on val`: the model with the best mean validation",
        "accuracy, and its test accuracy.",
        "",
        *table(groups),
    ]
    (out_dir / "comparison.md").write_text("\n".join(lines) + "\n")
    draw(groups, out_dir / "comparison.png")
    print("\n".join(lines))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
