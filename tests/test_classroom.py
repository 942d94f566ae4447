"""classroom/jupyterhub_config.py, the fallback for a class when Binder will not do: it loads as JupyterHub loads
it, opens a notebook that exists, sets the limits the README promises, and copies the course into a learner's
home once, without the solutions, never over their work."""

from __future__ import annotations

import os
import runpy
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "classroom" / "jupyterhub_config.py"


def load(monkeypatch, course: Path = ROOT) -> tuple[dict, object]:
    from traitlets.config import Config

    config = Config()
    monkeypatch.setenv("STATELAB_COURSE", str(course))
    namespace = runpy.run_path(str(CONFIG), init_globals={"get_config": lambda: config})
    return namespace, config


def test_the_hub_opens_the_first_notebook_with_a_learners_limits(monkeypatch):
    namespace, c = load(monkeypatch)
    start = c.Spawner.default_url.removeprefix("/lab/tree/").removeprefix(namespace["FOLDER"] + "/")
    assert (ROOT / start).is_file(), c.Spawner.default_url
    assert c.Spawner.mem_limit == "1G" and c.Spawner.cpu_limit == 1.0
    assert c.JupyterHub.bind_url.startswith("http://127.0.0.1:")
    assert c.Spawner.pre_spawn_hook is namespace["copy_course"]


def test_the_copy_hook_copies_once_without_solutions_and_keeps_a_learners_work(monkeypatch, tmp_path):
    namespace, c = load(monkeypatch)
    home = tmp_path / "home"
    home.mkdir()
    hook = c.Spawner.pre_spawn_hook
    hook.__globals__["home_of"] = lambda name: home  # the learner's home, without a Unix account
    spawner = types.SimpleNamespace(user=types.SimpleNamespace(name="learner"))
    hook(spawner)
    copy = home / namespace["FOLDER"]
    assert (copy / "notebooks" / "00_start_here.ipynb").is_file()
    assert (copy / "labs" / "01_survive_a_crash.ipynb").is_file()
    assert not (copy / "labs" / "solutions").exists() and not (copy / ".git").exists()
    (copy / "notebooks" / "00_start_here.ipynb").write_text("my own work")
    hook(spawner)  # a second start: nothing is copied over the learner's work
    assert (copy / "notebooks" / "00_start_here.ipynb").read_text() == "my own work"
    assert os.stat(copy).st_uid == os.stat(home).st_uid
