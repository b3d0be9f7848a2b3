"""Preemption: on SIGTERM, or SIGUSR1/SIGUSR2 (which Slurm can send ahead of the time limit), a run
finishes its current step, writes a mid-epoch checkpoint and exits 128+signum with one line.

A signal only sets a flag that the loop reads after each step. Handlers can only be installed from
the main thread: single runs and the jobs of the basic, joblib and submitit launchers train there; the
packed launcher, whose jobs are threads, installs them around its thread pool (src/sweeps/packing.py),
and the study sweeper around its trials' threads (src/sweeps/study_sweeper.py).
Imports no torch: the launching process of a sweep uses it.
"""

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
# Process-wide: every job thread of a packed sweep sees the signal the main thread received.
_received: list[int] = []
# The handlers in place before ours (submitit's requeue, for one): handed the signal after the checkpoint.
_previous: dict[int, Any] = {}

log = logging.getLogger(__name__)


class Preempted(SystemExit):
    """Raised once the checkpoint is on disk. A SystemExit, like the exit it leads to: it ends the whole
    process (the next job of a sweep must not start in a process being stopped) and no launcher or
    `except Exception` records it as a failed job."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(128 + signum)  # the shell's convention: 143 for SIGTERM
        self.signum, self.message = signum, message

    def __str__(self) -> str:
        return self.message


def stop_requested() -> int | None:
    """The stop signal received while catch_stop_signals was active, else None."""
    return _received[0] if _received else None


@contextlib.contextmanager
def catch_stop_signals() -> Iterator[None]:
    """While the block runs, a stop signal only sets the flag; the previous handlers are put back after.

    Off the main thread it installs nothing: the main thread's handlers set the flag for it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    _previous.clear()
    _previous.update({signum: signal.signal(signum, _record) for signum in STOP_SIGNALS})
    try:
        yield
    finally:
        for signum, handler in _previous.items():
            signal.signal(signum, handler)


def _record(signum: int, frame: object) -> None:
    request_stop(signum)


def request_stop(signum: int) -> None:
    """Ask every job of this process to stop after its current step, as stop signal `signum` does."""
    if not _received:
        _received.append(signum)


def preempted(signum: int, message: str) -> Preempted:
    """Log why the run stops, hand the signal to the handler in place before ours, and return the exit.

    Under submitit that handler requeues the job (and exits); a plain process has none and exits 128+signum.
    Only the main thread hands it on: a packed sweep's job threads stop, then the launch hands it on once.
    """
    log.warning(message)
    handler: Callable[[int, Any], object] | Any = _previous.get(signum)
    if callable(handler) and threading.current_thread() is threading.main_thread():
        handler(signum, None)
    return Preempted(signum, message)
