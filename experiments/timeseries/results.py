"""The recurrent-FCN table: each problem's `python -m src.tune` report beside the published 1NN-DTW and ROCKET
accuracies; results.csv and results.md here, and each problem's reports under series/<problem>/.

    python experiments/timeseries/results.py outputs/series
"""

import csv
import json
import shutil
import statistics
import sys
from pathlib import Path

from compare import PUBLISHED

HERE = Path(__file__).resolve().parent
PROBLEMS = tuple(PUBLISHED)
COLUMNS = ("problem", "model", "seeds", "test_acc_mean", "test_acc_std", "dtw", "rocket", "job_seconds")


def model_name(pick: list[str]) -> str:
    """The pick in a few words: `gru-FCN 32 attention shuffled se dropout 0.42 lr 1.1e-3`."""
    chosen = dict(override.split("=", 1) for override in pick)
    words = [f"{chosen.get('model.cell', 'lstm')}-FCN {chosen.get('model.hidden_size', '8')}"]
    words += [chosen.get("model.head", "last")]
    words += ["shuffled"] * (chosen.get("model.shuffle", "False") == "True")
    words += ["se"] * (chosen.get("model.squeeze_excite", "False") == "True")
    if "model.head_dropout" in chosen:
        words.append(f"dropout {float(chosen['model.head_dropout']):.2f}")
    if "optimizer.lr" in chosen:
        words.append(f"lr {float(chosen['optimizer.lr']):.1e}")
    return " ".join(words)


def rows(out: Path) -> list[dict]:
    table = []
    for problem in PROBLEMS:
        path = out / problem / "report.json"
        if not path.is_file():
            continue
        report = json.loads(path.read_text())
        dtw, rocket = PUBLISHED[problem]
        table.append(
            {
                "problem": problem,
                "model": model_name(report["pick"]),
                "seeds": report["seeds"],
                "test_acc_mean": round(report["test_acc_mean"], 4),
                "test_acc_std": round(report["test_acc_std"], 4),
                "dtw": "" if dtw is None else dtw,
                "rocket": "" if rocket is None else rocket,
                "job_seconds": report["job_seconds"],
            }
        )
        kept = HERE / "series" / problem
        kept.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / problem / "report.md", kept / "report.md")
        shutil.copy(path, kept / "report.json")
        for stage in ("study", "final"):
            shutil.copy(out / problem / stage / "summary.md", kept / f"{stage}_summary.md")
    return table


def goals(table: list[dict]) -> list[str]:
    """The three goals, each stated met or not, over the problems in the table."""
    with_dtw = [r for r in table if r["dtw"] != ""]
    above_dtw = [r["problem"] for r in with_dtw if r["test_acc_mean"] > r["dtw"]]
    with_rocket = [r for r in table if r["rocket"] != ""]
    at_rocket = [r["problem"] for r in with_rocket if r["test_acc_mean"] >= r["rocket"]]
    ours = statistics.fmean(r["test_acc_mean"] for r in with_rocket) if with_rocket else float("nan")
    rocket = statistics.fmean(r["rocket"] for r in with_rocket) if with_rocket else float("nan")
    return [
        f"- Above 1NN-DTW on every problem with a DTW figure: {len(above_dtw)} of {len(with_dtw)} "
        f"({', '.join(above_dtw) or 'none'}): **{'met' if len(above_dtw) == len(with_dtw) else 'not met'}**.",
        f"- At or above ROCKET on at least 5 of the {len(with_rocket)} problems with a ROCKET figure: "
        f"{len(at_rocket)} ({', '.join(at_rocket) or 'none'}): **{'met' if len(at_rocket) >= 5 else 'not met'}**.",
        f"- Mean over those problems at or above ROCKET's: {ours:.3f} against {rocket:.3f}: "
        f"**{'met' if ours >= rocket else 'not met'}**.",
    ]


def main(out: Path) -> None:
    table = rows(out)
    with (HERE / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(table)
    lines = [
        "| problem | pick | seeds | test acc | 1NN-DTW | ROCKET | job-seconds |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in table:
        lines.append(
            f"| {r['problem']} | {r['model']} | {r['seeds']} | {r['test_acc_mean']:.3f} ± {r['test_acc_std']:.3f} "
            f"| {r['dtw'] or '-'} | {r['rocket'] or '-'} | {r['job_seconds']:,.0f} |"
        )
    (HERE / "results.md").write_text("\n".join(lines + [""] + goals(table)) + "\n")
    print((HERE / "results.md").read_text(), end="")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
