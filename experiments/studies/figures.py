"""Figures of the studies experiments/studies/run.sh ran: per study, job-seconds, wall time, slot use,
the best trial's validation and test accuracy, and how the trials ended; then the means per pruner.

    python experiments/studies/figures.py outputs/studies [--table]

Job-seconds are the trials' own seconds (each job's `job_seconds` in metrics.json: set-up, training,
evaluation). Slot use is busy slot-seconds / (slots x wall), the wall measured around the sweep command,
counted two ways: `slot_use`, a slot busy from the job's start in its process (its .hydra/config.yaml
written) to its metrics.json, the same files under any sweeper; `slot_use_trials`, a slot busy from the
trial's ask to its tell (Optuna's own times; only a study in a journal file has them per trial).
"""

import json
import statistics
import sys
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

SLOTS = 2


def study_figures(sweep: Path) -> dict:
    """One study's figures from its job directories and its wall.json."""
    jobs = [json.loads(path.read_text()) for path in sweep.glob("*/metrics.json")]
    wall = json.loads((sweep / "wall.json").read_text())["wall_seconds"]
    finished = [job for job in jobs if job["status"] == "ok"]
    best = max(finished, key=lambda job: job["val_acc"])
    job_seconds = sum(job["job_seconds"] or 0.0 for job in jobs)
    busy = sum(path.stat().st_mtime - (path.parent / ".hydra" / "config.yaml").stat().st_mtime
               for path in sweep.glob("*/metrics.json"))  # fmt: skip
    figures = {
        "study": sweep.name,
        "trials": len(jobs),
        "complete": len(finished),
        "pruned": sum(job["status"] == "pruned" for job in jobs),
        "failed": sum(job["status"] not in ("ok", "pruned") for job in jobs),
        "epochs_trained": sum(job["epochs_completed"] or 0 for job in jobs),
        "job_seconds": round(job_seconds, 1),
        "wall_seconds": round(wall, 1),
        "slot_use": round(busy / (SLOTS * wall), 3),
        "slot_use_trials": None,
        "best_val_acc": best["val_acc"],
        "best_test_acc": best["test_acc"],
    }
    journal = sweep / "optuna.journal"
    if journal.is_file():
        storage = JournalStorage(JournalFileBackend(str(journal)))
        (summary,) = optuna.get_all_study_summaries(storage)
        trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
        in_flight = sum((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)
        figures["slot_use_trials"] = round(in_flight / (SLOTS * wall), 3)
    return figures


def main() -> None:
    root = Path(sys.argv[1])
    studies = [study_figures(sweep) for sweep in sorted(root.iterdir()) if (sweep / "wall.json").is_file()]
    means = {}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for pruner in sorted({s["study"].rsplit("-", 1)[0] for s in studies}):
        group = [s for s in studies if s["study"].rsplit("-", 1)[0] == pruner]
        keys = ("job_seconds", "epochs_trained", "wall_seconds", "slot_use", "slot_use_trials", "best_val_acc")
        means[pruner] = {
            key: round(statistics.fmean(s[key] for s in group), 4)
            for key in (*keys, "best_test_acc", "pruned")
            if all(s[key] is not None for s in group)
        } | {"seeds": len(group)}
    if "--table" not in sys.argv:
        print(json.dumps({"studies": studies, "means": means}, indent=2))
        return
    keys = ("study", "trials", "pruned", "epochs_trained", "job_seconds", "wall_seconds", "slot_use", "slot_use_trials")
    keys += ("best_val_acc", "best_test_acc")
    print("| " + " | ".join(keys) + " |")
    print("|" + " --- |" * len(keys))
    for s in studies:
        print("| " + " | ".join("" if s[k] is None else str(s[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
