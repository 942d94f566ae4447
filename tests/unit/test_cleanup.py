"""Temporary folders: private, removed with their owner, also when the owner is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from statelab.service import cleanup


def _gone(path: Path, seconds: float = 6.0) -> bool:
    deadline = time.monotonic() + seconds
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not path.exists()


def test_a_folder_is_private_and_goes_with_cleanup_and_then_no_keeper_runs():
    with cleanup.folder("statelab-test-") as name:
        path = Path(name)
        assert path.name.startswith("statelab-test-") and stat.S_IMODE(path.stat().st_mode) == 0o700
        assert cleanup.keeper_running()
    assert not path.exists()
    assert not cleanup.keeper_running()   # nothing left to look after: no helper process either


@pytest.mark.parametrize("make", ["cleanup.folder('statelab-victim-')", "statelab.workspace('lab01')"])
def test_a_killed_owner_leaves_no_folder_behind(make):
    """Both a library folder and a lab's workspace (sl.workspace, which labs use instead of TemporaryDirectory)."""
    code = ("import statelab; from statelab.service import cleanup; import time\n"
            f"f = {make}; open(f.name + '/data', 'w').write('x')\n"
            "print(f.name, flush=True); time.sleep(60)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        path = Path(child.stdout.readline().strip())
        assert path.is_dir() and (path / "data").exists()
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        assert _gone(path), f"{path} outlived its SIGKILLed owner"
    finally:
        child.kill()
        child.wait()
