"""`python -m src.tune [overrides] [--seeds N] [--out DIR]`: tune a recurrent classifier on one problem with a
study, then report its pick over N seeds, each trained on the whole training split and scored once on the
test set (src/sweeps/tuning.py). The overrides go to both stages, e.g. `data.name=GunPoint`."""

import argparse
import sys
from datetime import datetime
from pathlib import Path

from src.sweeps.tuning import TuneSettings, TuningError, tune


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="Tune with a study, then report the pick over seeds.")
    parser.add_argument("overrides", nargs="*", help="config overrides for both stages, as src.run takes them")
    parser.add_argument("--seeds", type=int, default=5, help="seeds the pick is retrained with (default 5)")
    parser.add_argument("--out", type=Path, default=None, help="default outputs/tune/<date>/<time>")
    parser.add_argument("--study", default="series", help="the study preset, conf/hparams_search/<name>")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        sys.exit(f"error: --seeds={args.seeds} is not allowed: expected an integer >= 1")
    out = args.out or Path("outputs/tune") / datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    try:
        report = tune(TuneSettings(tuple(args.overrides), out, args.seeds, args.study))
    except TuningError as error:
        sys.exit(f"error: {error}")
    print((out / "report.md").read_text(), end="")
    if report["seeds_failed"]:
        sys.exit(f"error: {report['seeds_failed']} of {args.seeds} seeds failed (see {out / 'final' / 'summary.md'})")


if __name__ == "__main__":
    main(sys.argv[1:])
