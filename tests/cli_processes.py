"""`python -m src.run ...` in processes forked from one that has already imported torch, Hydra and seqlab.

A fresh interpreter spends 2 to 4 s of CPU importing torch (and torch._dynamo, which its optimizers import)
before the first step; a forked one starts in milliseconds. The child then runs the module as `python -m`
does (runpy, `__main__`, the same argv), with its own working directory, environment, stdout and stderr, and
ends as an interpreter does: it waits for its threads, runs its atexit handlers, and exits with the code the
CLI gives. Start-up itself (what is imported before what) is tested with fresh interpreters elsewhere.
"""

import atexit
import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

# Imported once, in the fork server, so that every child starts with them (none runs a torch op there, so no
# thread pool is forked).
PRELOAD = ["torch", "torch._dynamo", "torch.utils.tensorboard", "matplotlib.pyplot", "hydra", "src.training.job"]
_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(PRELOAD)


def _exec_module(module: str, argv: list[str], cwd: str, env: dict, out: str, err: str, new_session: bool) -> None:
    """The child: become `python -m module argv...` in cwd with env, writing to the files out and err."""
    if new_session:
        os.setsid()
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(opened, fd)
        os.close(opened)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    sys.argv = [module, *argv]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        # An interpreter's exit, in its order: threading's shutdown (the hooks that stop executors' threads,
        # then a join of the threads still running), then the atexit handlers (the sweep report of a
        # multirun that ended early is written there). SystemExit then gives the exit code.
        threading._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()


class CliProcess:
    """A started `python -m module ...`: Popen's pid, poll, wait, send_signal, returncode; its output once ended."""

    def __init__(self, module: str, argv: list[str], cwd: Path, env: dict, new_session: bool = False):
        self._files = tempfile.TemporaryDirectory(prefix="cli-")
        self._out, self._err = Path(self._files.name, "stdout"), Path(self._files.name, "stderr")
        self.args = [sys.executable, "-m", module, *argv]
        arguments = (module, argv, str(cwd), env, str(self._out), str(self._err), new_session)
        self._process = _context.Process(target=_exec_module, args=arguments)
        self._process.start()
        self.pid = self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode  # negative for a signal, as Popen says it

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def kill_group(self, signum: int = signal.SIGKILL) -> None:
        """The signal to the process group (a child started with new_session=True leads its own)."""
        os.killpg(self.pid, signum)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        output = self._out.read_text(errors="replace"), self._err.read_text(errors="replace")
        self._files.cleanup()
        return output

    def completed(self, timeout: float | None = None) -> subprocess.CompletedProcess:
        """Its end, as subprocess.run gives it; killed, as subprocess.run does, if it runs past timeout."""
        try:
            stdout, stderr = self.communicate(timeout)
        except subprocess.TimeoutExpired:
            self.send_signal(signal.SIGKILL)
            raise
        return subprocess.CompletedProcess(self.args, self.returncode, stdout, stderr)
