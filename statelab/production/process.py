"""An OS process this interpreter owns: started in its own process group, stopped with it.

Everything else in statelab is a thread of the notebook's process. A production server is a
separate program, so it needs three guarantees a thread gets for free: it listens only on
127.0.0.1; stopping it stops its children too (a process group, killed as one); and it never
outlives the notebook, even when the kernel dies without running ``atexit``. For that each child
is started through ``launch.py``, which asks Linux to send it SIGTERM when the kernel dies
(``PR_SET_PDEATHSIG``) and then becomes the program; and ``keeper.py``, one small process per
kernel, removes the children's temporary folders once the kernel is gone, however it ended.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from typing import Any

from ..service import HOST
from ..service.registry import register

_started: weakref.WeakSet[ProcessService] = weakref.WeakSet()
_HERE = os.path.dirname(os.path.abspath(__file__))


class BinaryMissing(RuntimeError):
    """A program a lesson needs is not installed; the message says how to get it."""


class _Keeper:
    """The kernel's end of the pipe to ``keeper.py``: started when there is a first folder or process group to
    look after, ended (its pipe closed) when there is none left, so a notebook that stopped everything has no
    helper process left either."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._kept: set[str] = set()

    def tell(self, line: str) -> None:
        verb, _, arg = line.partition(" ")
        with self._lock:
            if self._pid != os.getpid():  # a forked child does not own its parent's keeper
                self._proc, self._pid, self._kept = None, os.getpid(), set()
            if verb.startswith("-"):
                if f"{verb[1:]} {arg}" not in self._kept:
                    return
                self._kept.discard(f"{verb[1:]} {arg}")
            elif line in self._kept:
                return
            else:
                self._kept.add(line)
            if self._proc is None or self._proc.poll() is not None:
                if not self._kept:
                    return
                self._proc = subprocess.Popen([sys.executable, "-I", "-S", os.path.join(_HERE, "keeper.py")],
                                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
                lines = self._kept
            else:
                lines = {line}
            try:
                self._proc.stdin.write("".join(f"{x}\n" for x in lines).encode())  # type: ignore[union-attr]
                self._proc.stdin.flush()  # type: ignore[union-attr]
            except (BrokenPipeError, ValueError):
                pass
            if not self._kept:  # nothing left to look after: let it go
                self._proc.stdin.close()  # type: ignore[union-attr]
                try:
                    self._proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    pass
                self._proc = None


_keeper = _Keeper()


_OWNER = ".statelab-owner"  # in each folder: "<pid> <start time>" of the process that made it


def _start_time(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), or None if there is none: with the pid, this names one
    process for good (a pid alone is reused)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def sweep_stale_folders() -> list[str]:
    """Remove the statelab folders in the temp folder whose maker is gone (the keeper normally does that at once;
    this is for when the keeper itself was killed). Only this user's folders that carry an owner file."""
    root, gone = tempfile.gettempdir(), []
    try:
        names = [n for n in os.listdir(root) if n.startswith("statelab-")]
    except OSError:
        return gone
    for name in names:
        path = os.path.join(root, name)
        try:
            if os.stat(path).st_uid != os.getuid():
                continue
            with open(os.path.join(path, _OWNER)) as f:
                pid, started = f.read().split()
        except (OSError, ValueError):
            continue
        if _start_time(int(pid)) != started:
            shutil.rmtree(path, ignore_errors=True)
            gone.append(path)
    return gone


def temporary_folder(prefix: str) -> str:
    """A new 0700 folder in the temp folder that is removed even if this kernel is killed (see ``keeper.py``).
    The caller still removes it when done (:func:`remove_folder`); the keeper is for when it cannot."""
    path = tempfile.mkdtemp(prefix=prefix)
    _keeper.tell(f"dir {path}")
    started = _start_time(os.getpid())
    if started is not None:
        with open(os.path.join(path, _OWNER), "w") as f:
            f.write(f"{os.getpid()} {started}\n")
    return path


def remove_folder(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    _keeper.tell(f"-dir {path}")


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
        sweep_stale_folders()
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
        _keeper.tell(f"dir {self.workdir}")
        launcher = [sys.executable, "-I", "-S", os.path.join(_HERE, "launch.py"), str(os.getpid())]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([*launcher, *argv], env=env, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
                                         close_fds=True, **kw)
        _keeper.tell(f"group {self.proc.pid}")  # its own process group (a new session): pgid == pid
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
        _keeper.tell(f"-group {self.proc.pid}")

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
            _keeper.tell(f"-group {proc.pid}")
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
