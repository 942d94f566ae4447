"""Scratch folders that never outlive the notebook, not even a kernel killed with SIGKILL.

Shared SQLite files, a Valkey server's socket and config, gunicorn's work folder: statelab keeps
them in temporary folders. ``tempfile.TemporaryDirectory`` removes its folder when the object is
collected or the interpreter exits normally, but a kernel that is killed (SIGKILL, the out-of-memory
killer, a crashed machine session) runs no Python at all, and its folders would stay in ``/tmp``
for good, readable by name to everyone on a shared machine.

So every scratch folder of this process lives under one root, ``/tmp/statelab-<pid>-XXXX`` (mode
0700: no other user can list or read it), and a tiny guard process watches it. The guard reads a
pipe whose only writer is this process; the kernel sends nothing, and when the pipe reaches its
end, which the operating system makes happen the moment this process dies by any means, the
guard removes the root and exits. The guard runs in a session of its own, so a signal sent to
the kernel's process group does not take it down before it has cleaned up.

``stop_all()`` releases the root when no folder in it is still in use; the next folder starts a
new guard. Roots left by a guard that was itself killed are swept the next time a root is made.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

#: The guard: wait for the end of standard input (its parent's death or release), then remove the root.
_GUARD = (
    "import shutil, signal, sys\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "try:\n"
    "    sys.stdin.buffer.read()\n"
    "finally:\n"
    "    shutil.rmtree(sys.argv[1], ignore_errors=True)\n"
)
ROOT_PREFIX = "statelab-"

_lock = threading.Lock()
_root: Path | None = None
_guard: subprocess.Popen[bytes] | None = None
_open: weakref.WeakSet[Scratch] = weakref.WeakSet()


class Scratch:
    """One scratch folder (``.name``), removed by ``cleanup()``, by ``with``, or with its process.

    The same surface as :class:`tempfile.TemporaryDirectory`, which it replaces in statelab.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._finalizer = weakref.finalize(self, shutil.rmtree, name, True)

    def cleanup(self) -> None:
        self._finalizer()

    @property
    def removed(self) -> bool:
        return not self._finalizer.alive

    def __enter__(self) -> str:
        return self.name

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        return f"<Scratch {self.name}>"


def folder(prefix: str = "statelab-") -> Scratch:
    """A new folder (mode 0700) under this process's guarded root: ``with folder("statelab-perf-") as path:``."""
    with _lock:
        root = _ensure_root()
        scratch = Scratch(tempfile.mkdtemp(prefix=prefix, dir=root))
        _open.add(scratch)
        return scratch


def root() -> Path | None:
    """This process's guarded root, while it has one."""
    return _root


def release() -> bool:
    """End the guard and remove the root when no folder in it is in use; True if it was released.

    Called by ``stop_all()``: after it, nothing statelab started is still running, the guard included.
    """
    global _root, _guard
    with _lock:
        if _guard is None or any(not s.removed for s in _open):
            return False
        guard, _guard, _root = _guard, None, None
    _end(guard)
    return True


def _ensure_root() -> Path:
    global _root, _guard
    if _root is not None and _guard is not None and _guard.poll() is None and _root.is_dir():
        return _root
    if _guard is not None:  # the guard died or the root went: start again (a folder in use keeps its path)
        _end(_guard)
    _sweep()
    made = Path(tempfile.mkdtemp(prefix=f"{ROOT_PREFIX}{os.getpid()}-"))
    _guard = subprocess.Popen([sys.executable, "-I", "-c", _GUARD, str(made)], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                              close_fds=True)
    _root = made
    return made


def _end(guard: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(OSError, ValueError):
        guard.stdin.close()  # type: ignore[union-attr]
    try:
        guard.wait(timeout=5)
    except subprocess.TimeoutExpired:
        guard.kill()
        guard.wait()


def _sweep() -> None:
    """Remove roots of this user whose process is gone and whose guard did not clean up (it was killed too)."""
    base = Path(tempfile.gettempdir())
    try:
        candidates = list(base.glob(f"{ROOT_PREFIX}[0-9]*-*"))
    except OSError:
        return
    for path in candidates:
        pid = path.name[len(ROOT_PREFIX):].split("-", 1)[0]
        try:
            if not pid.isdigit() or path.stat().st_uid != os.getuid() or not path.is_dir():
                continue
            os.kill(int(pid), 0)  # still alive (or not ours to signal): leave it
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (PermissionError, OSError):
            continue
