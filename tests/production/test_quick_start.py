"""README's quick start, command 1 plus its line for root, containers and headless machines, run the way CI runs
(as root there): JupyterLab must start from a fresh clone with exactly the README's flags and answer, then stop.

Issue 20: as root JupyterLab refused to start ("Running as root is not recommended"), and a headless machine
needs ``--no-browser``. The venv's packages stand in for ``pip install -r requirements.txt`` (that step is
what test_binder.py checks); everything after ``&&`` is taken from the README as written.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from browser import free_port, jupyter_env

ROOT = Path(__file__).resolve().parents[2]


def readme_root_command() -> list[str]:
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n2. ", 1)[0]  # command 1 and what follows it
    match = re.search(r"`(jupyter lab [^`]*--allow-root[^`]*)`", quick)
    assert match, "README's command 1 has no line with the jupyter lab command for root and headless machines"
    return shlex.split(match.group(1))


def test_the_root_line_has_the_flags_root_and_headless_machines_need():
    command = readme_root_command()
    assert {"--allow-root", "--no-browser", "--ip=127.0.0.1"} <= set(command), command
    assert not any(arg.startswith("--ip=") and arg != "--ip=127.0.0.1" for arg in command)  # loopback only


def test_the_root_line_starts_jupyterlab_from_a_fresh_clone_and_it_answers(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{ROOT}", str(clone)], check=True, timeout=120)
    command = readme_root_command()
    assert command[:2] == ["jupyter", "lab"]
    port = free_port()
    # the README's command as written, with the venv's Python; only the port is ours (8888 may be taken here)
    argv = [sys.executable, "-m", "jupyterlab", *command[2:], f"--port={port}", "--ServerApp.port_retries=0"]
    env = jupyter_env(tmp_path / "home")
    log = tmp_path / "lab.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, cwd=clone, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        token, deadline = None, time.monotonic() + 90
        while time.monotonic() < deadline and process.poll() is None and token is None:
            found = re.search(rf"http://127\.0\.0\.1:{port}/lab\?token=(\w+)", log.read_text(errors="replace"))
            token = found.group(1) if found else None
            time.sleep(0.3)
        assert process.poll() is None, f"JupyterLab exited:\n{log.read_text()[-2000:]}"
        assert token, f"JupyterLab printed no address with a token:\n{log.read_text()[-2000:]}"
        url = f"http://127.0.0.1:{port}/api/contents/notebooks/00_start_here.ipynb?content=0&token={token}"
        with urllib.request.urlopen(url, timeout=10) as answer:  # it answers, and serves the clone's notebook
            assert answer.status == 200
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.poll() is not None
