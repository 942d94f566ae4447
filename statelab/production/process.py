"""An OS process this interpreter owns: started in its own process group, stopped with it.

Everything else in statelab is a thread of the notebook's process. A production server is a
separate program, so it needs three guarantees a thread gets for free: it listens only on
127.0.0.1; stopping it stops its children too (a process group, killed as one); and it never
outlives the notebook, even when the kernel dies without running ``atexit``. For that each child
is started through ``launch.py``, which asks Linux to send it SIGTERM when the kernel dies
(``PR_SET_PDEATHSIG``) and then becomes the program; and :mod:`statelab.service.cleanup` ends their
process groups and removes their temporary folders once the kernel is gone, however it ended.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import time
import weakref
from typing import Any

from ..service import HOST
from ..service.cleanup import forget_group, remove_folder, temporary_folder, watch_folder, watch_group
from ..service.registry import register

_started: weakref.WeakSet[ProcessService] = weakref.WeakSet()
_HERE = os.path.dirname(os.path.abspath(__file__))


class BinaryMissing(RuntimeError):
    """A program a lesson needs is not installed; the message says how to get it."""


class ProcessService:
    """Base of :class:`~statelab.production.gunicorn.Gunicorn` and :class:`~statelab.production.redis.RedisServer`.

    Subclasses set ``self.port`` and start ``self.proc`` with :meth:`_spawn`. ``stop()`` asks the
    process group to quit and kills it after ``grace`` seconds; ``kill()`` is a crash (SIGKILL).
    Both are safe to call twice; re-running the cell that made it, ``sl.stop_all()`` and interpreter
    exit call ``stop()``.
    """

    grace = 2.0

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.workdir = temporary_folder(f"statelab-{name}-")
        register(self)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def _spawn(self, argv: list[str], env: dict[str, str] | None = None, **kw: Any) -> None:
        os.makedirs(self.workdir, mode=0o700, exist_ok=True)  # again after a stop(): start() may follow it
        watch_folder(self.workdir)
        launcher = [sys.executable, "-I", "-S", os.path.join(_HERE, "launch.py"), str(os.getpid())]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*launcher, *argv], env=env, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
                                         close_fds=True, **kw)
        watch_group(self.proc.pid)  # its own process group (a new session): pgid == pid
        _started.add(self)

    @property
    def log_path(self) -> str:
        return os.path.join(self.workdir, "stderr.log")

    def log_tail(self, chars: int = 600) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-chars:]
        except OSError:
            return ""

    def _signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def kill(self) -> None:
        """A crash: SIGKILL to the whole process group, nothing is flushed or finished."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self.proc.wait(timeout=5)
        forget_group(self.proc.pid)

    quit_signal = signal.SIGTERM  # gunicorn: graceful (bounded by its graceful_timeout); Redis: quit now

    def stop(self) -> None:
        """Ask the process group to quit; SIGKILL whatever is left after ``grace`` seconds; remove its files."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            self._signal_group(self.quit_signal)
            try:
                proc.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                pass
        self._signal_group(signal.SIGKILL)  # stragglers of the group (workers) even when the leader is gone
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            forget_group(proc.pid)
        self.proc = None
        remove_folder(self.workdir)

    def _wait_ready(self, ready: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise RuntimeError(f"{what} exited at start: {self.log_tail()}")
            if ready():
                return
            time.sleep(0.01)
        log = self.log_tail()
        self.stop()
        raise TimeoutError(f"{what} was not ready within {timeout:g} s: {log}")

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.url} {'alive' if self.alive else 'down'}>"


@atexit.register
def _kill_all_at_exit() -> None:
    """At interpreter exit, crash every process group we started at once: a kernel shutting down has a few
    seconds before Jupyter sends it SIGTERM, and a graceful stop of each server in turn could take longer."""
    for service in list(_started):
        service.kill()
        remove_folder(service.workdir)
