"""How an entry point exits: one line and exit 1 for an error (the traceback with HYDRA_FULL_ERROR=1), one
line and exit 128+signal for a preemption, 130 for Ctrl-C. Every entry point runs under `cli`."""

import os
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from src.config.errors import one_line
from src.runs.preemption import Preempted

_show_traceback = False  # set by `cli`: HYDRA_FULL_ERROR=1 asks for the traceback instead of one line


def stop(error: Exception) -> NoReturn:
    """End a single run on its error with one line and exit 1, from inside the task function, where
    raising would make Hydra print "Error executing job with overrides" before it; under `cli` with
    HYDRA_FULL_ERROR=1, raise it for the traceback."""
    if _show_traceback:
        raise error
    raise SystemExit(f"error: {one_line(error)}")


def cli(app: Callable[[], Any]) -> None:
    """Run a Hydra app; any error becomes one line and exit 1 (HYDRA_FULL_ERROR=1 shows the traceback), a
    preemption one line and exit 128+signum."""
    global _show_traceback
    wants_traceback = _show_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let Hydra's errors reach us instead of its multi-line report
    try:
        app()
    except Preempted as preemption:  # its checkpoint is written; the exit status tells the scheduler which signal
        print(f"error: {preemption}", file=sys.stderr)
        sys.exit(preemption.code)
    except KeyboardInterrupt:
        print("error: interrupted; what was checkpointed is kept (trainer.resume=true continues it)", file=sys.stderr)
        sys.exit(130)  # the shell's convention for SIGINT
    except Exception as error:
        if wants_traceback:
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(1)
