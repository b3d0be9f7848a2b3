"""Tune, then report: a study picks a configuration on validation parts, then the pick is trained again over
several seeds on the whole training split and each run scores the test set once.

Both stages are sweeps of `python -m src.run`, in processes of their own (Hydra's state is per process): the
study (`hparams_search=series` by default) in `<out>/study`, the seeds (`experiment=series data.refit=true`)
in `<out>/final`. `report.md` and `report.json` in `<out>` give the pick and its test accuracy, mean ± std.
"""

import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from src.runs.atomic import write_bytes_atomically
from src.runs.results import read_metrics
from src.sweeps.report import job_dirs

RESULTS_FILE = "optimization_results.yaml"  # the study sweeper's record of its best trial
ROOT = Path(__file__).resolve().parents[2]  # where `python -m src.run` is found, wherever the caller stands


class TuningError(RuntimeError):
    """A stage of the tuning ended without what the next stage needs (one line, naming the directory)."""


@dataclass(frozen=True)
class TuneSettings:
    """What to tune and how: the user's overrides, the study preset, the recipe the seeds retrain with."""

    overrides: tuple[str, ...] = ()
    out: Path = Path("outputs/tune")
    seeds: int = 5
    study: str = "series"  # conf/hparams_search/<study>
    recipe: str = "series"  # conf/experiment/<recipe>: the study's recipe, without the study


def tune(settings: TuneSettings) -> dict:
    """Run the study, then the seeds of its best configuration; write and return the report."""
    out = settings.out.resolve()
    study_dir, final_dir = out / "study", out / "final"
    _sweep([f"hparams_search={settings.study}", *settings.overrides, f"hydra.sweep.dir={study_dir}"])
    best = best_overrides(study_dir)
    # The study's own keys mean nothing to the seeds' basic sweeper.
    shared = [o for o in settings.overrides if not o.lstrip("+~").startswith("hydra.sweeper")]
    seeds = ",".join(str(seed) for seed in range(settings.seeds))
    _sweep(
        [f"experiment={settings.recipe}", *shared, *best, "data.refit=true", f"seed={seeds}"]
        # The pick's overrides would make a directory name too long: the job number and seed say enough.
        + ["hydra/launcher=packed", f"hydra.sweep.dir={final_dir}", "hydra.sweep.subdir=${hydra.job.num}_seed${seed}"]
    )
    report = summarise(study_dir, final_dir, best)
    write_report(out, report)
    return report


def _sweep(arguments: list[str]) -> None:
    """One multirun of src.run; its failures are its own one-line errors, on stderr as it prints them."""
    command = [sys.executable, "-m", "src.run", "-m", *arguments]
    if subprocess.run(command, cwd=ROOT, check=False).returncode != 0:
        where = next(a.split("=", 1)[1] for a in arguments if a.startswith("hydra.sweep.dir="))
        # A study with some failed trials still has a best: only a missing record stops the tuning.
        if not (Path(where) / RESULTS_FILE).is_file() and not (Path(where) / "summary.csv").is_file():
            raise TuningError(f"the sweep in {where} ended with an error (its summary.md says which jobs)")


def best_overrides(study_dir: Path) -> list[str]:
    """The best trial's parameters as overrides, from the study's optimization_results.yaml."""
    path = study_dir / RESULTS_FILE
    if not path.is_file():
        raise TuningError(f"{path} is missing: no trial of the study completed")
    params = OmegaConf.to_container(OmegaConf.load(path).best_params)
    return [f"{key}={'null' if value is None else value}" for key, value in params.items()]


def summarise(study_dir: Path, final_dir: Path, best: list[str]) -> dict:
    """The pick, the study's value, each seed's test accuracy with their mean and std, and the job-seconds."""
    study_metrics = [m for m in map(read_metrics, job_dirs(study_dir)) if m]
    final_metrics = [read_metrics(job) for job in job_dirs(final_dir)]
    finished = [m for m in final_metrics if m and m["status"] == "ok" and m["test_acc"] is not None]
    if not finished:
        raise TuningError(f"no run in {final_dir} finished: see its summary.md")
    accuracies = [m["test_acc"] for m in finished]
    results = OmegaConf.to_container(OmegaConf.load(study_dir / RESULTS_FILE))
    direction = OmegaConf.load(study_dir / "multirun.yaml").hydra.sweeper.direction
    return {
        "pick": best,
        "study_metric": "val_acc" if direction == "maximize" else "val_loss",
        "study_value": results["best_value"],
        "study_trials": len(study_metrics),
        "seeds": len(accuracies),
        "seeds_failed": len(final_metrics) - len(finished),
        "test_acc": accuracies,
        "test_acc_mean": statistics.fmean(accuracies),
        "test_acc_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
        "job_seconds": round(sum(m.get("job_seconds") or 0.0 for m in [*study_metrics, *finished]), 1),
    }


def write_report(out: Path, report: dict) -> None:
    """report.json (every figure) and report.md (the pick and the mean ± std) in `out`."""
    write_bytes_atomically(out / "report.json", (json.dumps(report, indent=2) + "\n").encode())
    lines = [
        f"# Tuned in {out}",
        "",
        f"Pick of {report['study_trials']} trials on validation "
        f"({report['study_metric']} {report['study_value']:.4f}): `{' '.join(report['pick'])}`.",
        "",
        f"Retrained on the whole training split over {report['seeds']} seeds, the test set scored once each: "
        f"**test_acc {report['test_acc_mean']:.4f} ± {report['test_acc_std']:.4f}** "
        f"({', '.join(f'{a:.4f}' for a in report['test_acc'])}); {report['job_seconds']:,} job-seconds in all.",
    ]
    write_bytes_atomically(out / "report.md", ("\n".join(lines) + "\n").encode())
