"""One writer per run directory: `run.lock` names the live process (pid and host) that writes there.

The lock is an flock on the file, which the OS drops when the process ends however it ends (SIGKILL,
a crash, a preempted node), so a lock left behind by a dead process is simply taken over; the pid and
host in the file are only for the messages. Linux NFS clients carry flock over to the server's locks.
"""

import contextlib
import errno
import fcntl
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = "run.lock"
# File systems without locks: the run goes on unguarded rather than not at all (a warning says so).
NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}

log = logging.getLogger(__name__)


class RunDirBusy(RuntimeError):
    """Another live process writes this run directory."""


@contextlib.contextmanager
def hold_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold run_dir/run.lock while the block runs; refuse (RunDirBusy) while another process holds it."""
    path = run_dir / LOCK_FILE
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path)
    try:
        yield
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                path.unlink()  # while still locked: a waiting process then finds the file gone and retries
            os.close(fd)


def _acquire(path: Path) -> int | None:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _holder(fd)
            os.close(fd)
            if error.errno in NO_LOCKS:
                log.warning("cannot lock %s (%s): nothing stops a second run writing here", path, error.strerror)
                return None
            raise RunDirBusy(
                f"{path.parent} is in use by {holder or 'another process'} (lock {path}); wait for it to end, "
                "or name another hydra.run.dir / hydra.sweep.dir"
            ) from None
        if _is_current(path, fd):
            break
        os.close(fd)  # the holder removed the file between our open and our lock: lock the file there now
    if previous := _holder(fd):  # a holder that ended cleanly removes the file: this one was killed
        log.warning("took over %s from %s, which ended without releasing it", path, previous)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode(), 0)
    return fd


def _is_current(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _holder(fd: int) -> str:
    return os.pread(fd, 200, 0).decode(errors="replace").strip()
