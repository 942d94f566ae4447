"""Scratch folders: private, removed with their owner, also when the owner is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from statelab.service import scratch


def _gone(path: Path, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not path.exists()


def test_a_folder_is_private_and_goes_with_cleanup_and_the_root_with_release():
    with scratch.folder("statelab-test-") as name:
        path = Path(name)
        root = scratch.root()
        assert path.parent == root and path.name.startswith("statelab-test-")
        assert stat.S_IMODE(path.stat().st_mode) == 0o700 and stat.S_IMODE(root.stat().st_mode) == 0o700
        assert not scratch.release()   # a folder is in use: the root stays
    assert not path.exists()
    assert scratch.release() and _gone(root) and scratch.root() is None


def test_a_killed_owner_leaves_no_folder_behind():
    code = ("from statelab.service import scratch; import sys, time\n"
            "f = scratch.folder('statelab-victim-'); open(f.name + '/data', 'w').write('x')\n"
            "print(f.name, flush=True); time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        path = Path(child.stdout.readline().strip())
        assert path.is_dir() and (path / "data").exists()
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        assert _gone(path.parent), f"{path.parent} outlived its SIGKILLed owner"
    finally:
        child.kill()
        child.wait()


def test_a_root_whose_owner_and_guard_both_died_is_swept_by_the_next_one():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = Path(tempfile.mkdtemp(prefix=f"{scratch.ROOT_PREFIX}{dead.pid}-"))
    (stale / "left").write_text("x")
    with scratch.folder():
        pass
    assert not stale.exists()
    assert scratch.release()
