"""Tidy up after a notebook kernel that died without cleaning up: ``python -I -S keeper.py``.

A kernel killed with SIGKILL runs no ``atexit``: its servers still end (each asked Linux for a
signal when its parent dies, see ``launch.py``), but their temporary folders would stay in /tmp.
This small process, started once per kernel in its own session (so Jupyter's kill of the kernel's
process group does not reach it), reads lines from a pipe whose other end only the kernel holds:

``dir PATH`` / ``-dir PATH``       a folder to remove when the kernel is gone / one already removed
``group PGID`` / ``-group PGID``   a process group to end first / one already ended

The pipe reaching its end means the kernel has exited, however it exited. The keeper then gives
the groups a moment to end (they received SIGTERM), kills what is left, removes the folders and
exits. A kernel that stopped everything itself leaves it nothing to do.
"""

import os
import shutil
import signal
import sys
import time


def _alive(pgid: int) -> bool:
    """True while a process of group ``pgid`` still runs. A zombie (dead, waiting for whoever adopted it to
    read its exit status) does not count: it holds no file open and writes nothing."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        entries = None
    if entries is None:  # no /proc: ask the kernel, zombies included
        try:
            os.killpg(pgid, 0)
        except OSError:
            return False
        return True
    for pid in filter(str.isdigit, entries):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":  # fields after the name: state, ppid, pgrp, ...
            return True
    return False


def _wait(groups: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while groups and time.monotonic() < deadline:
        groups = {g for g in groups if _alive(g)}
        time.sleep(0.05)
    return groups


def main() -> None:
    folders: set[str] = set()
    groups: set[int] = set()
    for line in sys.stdin:
        verb, _, arg = line.rstrip("\n").partition(" ")
        if verb == "dir":
            folders.add(arg)
        elif verb == "-dir":
            folders.discard(arg)
        elif verb == "group":
            groups.add(int(arg))
        elif verb == "-group":
            groups.discard(int(arg))
    left = _wait(groups, 3.0)  # a gunicorn master stops its workers within its graceful timeout (1 s)
    for pgid in left:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    _wait(left, 2.0)
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
