"""Files written whole or not at all, and checkpoints written off the training thread.

Every whole file a run writes (checkpoints, metrics.json, pictures, the sweep report, the decoded data
cache) goes through `write_atomically`: a temporary file beside the target, fsynced, then renamed over it.
A reader sees the old file or the new one, never half of one; on failure the temporary file is removed and
the error names the target and the OS's reason. Files that grow line by line or are held open do not:
TensorBoard's event files (appended; a resume purges the steps after the checkpoint), run.log (appended by
logging), run.lock (src/runs/runlock.py: opened and locked in place) and Hydra's own .hydra/ files.
"""

import contextlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: Path, write: Callable[[BinaryIO], object], keep_previous: Path | None = None) -> None:
    """Call write(handle) on a temporary file in path's directory, fsync it, and rename it over path;
    with keep_previous, the file path held until then is first renamed to keep_previous."""
    # Per process and thread: parallel jobs and packed jobs may write the same file at once.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        if keep_previous is not None and path.exists():  # only once the new file is whole on disk
            os.replace(path, keep_previous)
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(OSError):  # where the directory cannot be made there is no temp file either
            tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OSError(error.errno, error.strerror, str(path)) from error
        raise


def write_bytes_atomically(path: Path, data: bytes, keep_previous: Path | None = None) -> None:
    """write_atomically for bytes already in memory."""
    write_atomically(path, lambda handle: handle.write(data), keep_previous)


class BackgroundWriter:
    """Writes files atomically on one thread of its own, in the order given, so that the disk's fsync
    never holds up the training thread (nor, in a packed sweep, the other jobs' GPU work).

    `submit` raises the error of a write that has already failed (a full disk stops the run at its next
    checkpoint, not at its end); `close` waits for every write and raises the first error.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="writer")
        self._pending: list[Future] = []

    def submit(self, path: Path, data: bytes, keep_previous: Path | None = None) -> None:
        for future in self._pending:
            if future.done() and future.exception() is not None:
                raise future.exception()
        self._pending = [future for future in self._pending if not future.done()]
        self._pending.append(self._pool.submit(write_bytes_atomically, path, data, keep_previous))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for future in self._pending:
            future.result()
        self._pending.clear()

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, exc_type: type | None, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:  # the error already in flight is the one to report; still wait for the writes queued before it
            self._pool.shutdown(wait=True)
