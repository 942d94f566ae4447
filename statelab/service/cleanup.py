"""What must go when the kernel goes, even when it is killed with SIGKILL: temporary folders and child processes.

Shared SQLite files, a Valkey server's socket and password file, gunicorn's work folder, a link's
socket: statelab keeps them in temporary folders, and production servers run as child process
groups. ``tempfile.TemporaryDirectory`` and ``atexit`` clean up when Python exits normally, but a
kernel killed with SIGKILL (or by the out-of-memory killer) runs no Python at all: its folders
would stay in ``/tmp`` and its servers would run on.

So this module tells ``keeper.py``, one small process per kernel, what to look after. The keeper
reads a pipe whose only writer is the kernel. When the pipe reaches its end, which the operating
system makes happen the moment the kernel dies by any means, the keeper ends the process groups
it was told of (they were also asked to die with their parent: ``production/launch.py``), removes
the folders, and exits. It runs in a session of its own, so a signal sent to the kernel's process
group does not take it down first. It runs only while there is something to look after: a notebook
that stopped everything has no helper process left.

Every folder is 0700 (no other user can list or read it) and carries the pid and start time of
the process that made it; a folder whose maker is gone and that no keeper removed (the keeper was
killed too) is swept when this process makes its first folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref

_HERE = os.path.dirname(os.path.abspath(__file__))
_OWNER = ".statelab-owner"  # in each folder: "<pid> <start time>" of the process that made it


class _Keeper:
    """The kernel's end of the pipe to ``keeper.py``: started when there is a first folder or process group to
    look after, ended (its pipe closed) when there is none left."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._kept: set[str] = set()
        self.swept = False

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

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self._pid == os.getpid()


_keeper = _Keeper()


def process_start_time(pid: int) -> str | None:
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
        if process_start_time(int(pid)) != started:
            shutil.rmtree(path, ignore_errors=True)
            gone.append(path)
    return gone


def temporary_folder(prefix: str = "statelab-") -> str:
    """A new 0700 folder in the temp folder that is removed even if this kernel is killed.
    The caller still removes it when done (:func:`remove_folder`); the keeper is for when it cannot."""
    if not _keeper.swept:
        _keeper.swept = True
        sweep_stale_folders()
    path = tempfile.mkdtemp(prefix=prefix)
    watch_folder(path)
    started = process_start_time(os.getpid())
    if started is not None:
        with open(os.path.join(path, _OWNER), "w") as f:
            f.write(f"{os.getpid()} {started}\n")
    return path


def watch_folder(path: str) -> None:
    """Have ``path`` removed when this process dies (again after :func:`remove_folder`, if it is made anew)."""
    _keeper.tell(f"dir {path}")


def remove_folder(path: str) -> None:
    """Remove ``path`` now, and stop looking after it."""
    shutil.rmtree(path, ignore_errors=True)
    _keeper.tell(f"-dir {path}")


def watch_group(pgid: int) -> None:
    """Have process group ``pgid`` ended (SIGKILL after a grace) when this process dies."""
    _keeper.tell(f"group {pgid}")


def forget_group(pgid: int) -> None:
    """Process group ``pgid`` was ended by its owner: nothing to do for it at death."""
    _keeper.tell(f"-group {pgid}")


def keeper_running() -> bool:
    """Whether this process's keeper is running (it runs only while there is something to look after)."""
    return _keeper.running


class Scratch:
    """One temporary folder (``.name``), removed by ``cleanup()``, by ``with``, or with this process however it ends.

    The surface of :class:`tempfile.TemporaryDirectory`, which it replaces in statelab.
    """

    def __init__(self, prefix: str = "statelab-") -> None:
        self.name = temporary_folder(prefix)
        self._finalizer = weakref.finalize(self, remove_folder, self.name)

    def cleanup(self) -> None:
        self._finalizer()

    def __enter__(self) -> str:
        return self.name

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"<Scratch {self.name}>"


def folder(prefix: str = "statelab-") -> Scratch:
    """A temporary folder that never outlives this process: ``with cleanup.folder("statelab-perf-") as path:``."""
    return Scratch(prefix)
