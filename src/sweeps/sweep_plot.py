"""The sweep report's picture: each job's score against every parameter the sweep varied."""

from pathlib import Path
from typing import Any

from src.runs.atomic import write_atomically


def swept_values(rows: list[dict[str, Any]], score: str) -> dict[str, list[tuple[str, float]]]:
    """For each override key that takes more than one value: (value, score) of every finished job."""
    points: dict[str, list[tuple[str, float]]] = {}
    for row in rows:
        for override in row["overrides"].split():
            key, _, value = override.partition("=")
            points.setdefault(key, [])
            if row["status"] == "ok" and row[score] is not None:
                points[key].append((value, row[score]))
    return {key: values for key, values in points.items() if len({value for value, _ in values}) > 1}


def draw_sweep(sweep_dir: Path, rows: list[dict[str, Any]], score: str) -> Path | None:
    """summary.png: every job's score (the validation accuracy) against each swept parameter."""
    swept = swept_values(rows, score)
    if not swept:
        return None
    import matplotlib  # imported here: only the picture needs it

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(1, len(swept), figsize=(4 * len(swept), 3.5), squeeze=False)
    for axis, (key, points) in zip(axes[0], sorted(swept.items()), strict=True):
        scores = [score for _, score in points]
        if numbers := _as_numbers([value for value, _ in points]):
            axis.scatter(numbers, scores, alpha=0.7)
        else:  # choices such as model=gru: one column each
            labels = sorted({value for value, _ in points})
            axis.scatter([labels.index(value) for value, _ in points], scores, alpha=0.7)
            axis.set_xticks(range(len(labels)), labels, rotation=30)
        axis.set(xlabel=key, ylabel=score)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    path = sweep_dir / "summary.png"
    write_atomically(path, lambda handle: figure.savefig(handle, format="png", dpi=100))
    pyplot.close(figure)
    return path


def _as_numbers(values: list[str]) -> list[float] | None:
    """The values as numbers (lr=1e-3, hidden_size=64), or None when any is a name (model=gru)."""
    try:
        return [float(value) for value in values]
    except ValueError:
        return None
