"""Errors as the user sees them: one line naming the key, the value and what is allowed."""

import os
import re
import sys
from collections.abc import Callable
from typing import Any

from src.preemption import Preempted


class ConfigError(ValueError):
    """A config value that is not allowed: names the key, the value and what is allowed."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        super().__init__(f"{key}={value!r} is not allowed: expected {allowed}")
        self.key = key


def require(ok: bool, key: str, value: object, allowed: str) -> None:
    """Raise ConfigError(key, value, allowed) unless ok."""
    if not ok:
        raise ConfigError(key, value, allowed)


# Hydra's answer to `+group=option` for a group the defaults list already has (experiment: null, say).
MULTIPLE_VALUES = re.compile(r"Multiple values for (\S+)\. To override a value use 'override \1: (.+)'")


def one_line(error: BaseException) -> str:
    """Reduce an exception (Hydra's multi-line reports and their causes) to one readable line."""
    if match := MULTIPLE_VALUES.match(str(error)):
        group, option = match.groups()
        return f"+{group}={option}: {group} already has a place in the defaults list; write {group}={option}"
    if isinstance(error, OSError) and error.filename:
        return f"cannot write {error.filename}: {error.strerror} (check hydra.run.dir / hydra.sweep.dir and free space)"
    parts = [error, error.__cause__] if error.__cause__ is not None else [error]
    if type(error).__name__ == "InstantiationException":  # its own text is only "Error in call to ..."
        parts = parts[1:] or parts
    kept = []
    for line in "\n".join(map(str, parts)).splitlines():
        line = line.strip()
        if line.startswith("Config search path"):
            break
        if line and not line.startswith(("full_key:", "object_type=", "reference_type=")):
            kept.append(line)
    return " ".join(kept) or type(error).__name__


def cli(app: Callable[[], Any]) -> None:
    """Run a Hydra app; any error becomes one line and exit 1 (HYDRA_FULL_ERROR=1 shows the traceback), a
    preemption one line and exit 128+signum."""
    wants_traceback = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let Hydra's errors reach us instead of its multi-line report
    try:
        app()
    except Preempted as stop:  # its checkpoint is written; the exit status tells the scheduler which signal
        print(f"error: {stop}", file=sys.stderr)
        sys.exit(stop.code)
    except KeyboardInterrupt:
        print("error: interrupted; what was checkpointed is kept (trainer.resume=true continues it)", file=sys.stderr)
        sys.exit(130)  # the shell's convention for SIGINT
    except Exception as error:
        if wants_traceback:
            raise
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(1)
