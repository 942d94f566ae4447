"""classroom/jupyterhub_config.py, the fallback for a class when Binder will not do: it loads as JupyterHub loads
it, opens a notebook that exists, sets the limits the README promises, and copies the course into a learner's
home once, without the solutions, never over their work."""

from __future__ import annotations

import os
import runpy
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "classroom" / "jupyterhub_config.py"


def load(monkeypatch, course: Path = ROOT) -> tuple[dict, object]:
    from traitlets.config import Config

    config = Config()
    monkeypatch.setenv("STATELAB_COURSE", str(course))
    namespace = runpy.run_path(str(CONFIG), init_globals={"get_config": lambda: config})
    return namespace, config


def test_the_hub_opens_the_first_notebook_and_sets_only_limits_its_spawner_enforces(monkeypatch):
    namespace, c = load(monkeypatch)
    start = c.Spawner.default_url.removeprefix("/lab/tree/").removeprefix(namespace["FOLDER"] + "/")
    assert (ROOT / start).is_file(), c.Spawner.default_url
    assert c.JupyterHub.bind_url.startswith("http://127.0.0.1:")
    assert c.Spawner.pre_spawn_hook is namespace["copy_course"]
    # LocalProcessSpawner ignores mem_limit and cpu_limit (jupyterhub issue 1584): the config must not set them
    assert c.JupyterHub.spawner_class == "localprocess"
    for section in ("Spawner", "LocalProcessSpawner"):
        assert "mem_limit" not in c[section] and "cpu_limit" not in c[section]
    # SystemdSpawner enforces them: there they are set
    monkeypatch.setenv("STATELAB_SPAWNER", "systemd")
    _, c = load(monkeypatch)
    assert c.JupyterHub.spawner_class == "systemdspawner.SystemdSpawner"
    assert c.SystemdSpawner.mem_limit == "1G" and c.SystemdSpawner.cpu_limit == 1.0
    assert "mem_limit" not in c.Spawner


def test_the_hub_culls_idle_servers_limits_spawns_and_sizes_from_memory(monkeypatch):
    namespace, c = load(monkeypatch)
    culler = next(s for s in c.JupyterHub.services if s["name"] == "idle-culler")
    assert culler["command"][1:3] == ["-m", "jupyterhub_idle_culler"]
    role = next(r for r in c.JupyterHub.load_roles if r["name"] == "idle-culler")
    assert "delete:servers" in role["scopes"] and role["services"] == ["idle-culler"]
    assert 1 <= c.JupyterHub.concurrent_spawn_limit <= 8 and c.Spawner.start_timeout >= 60
    assert "--KernelManager.transport=ipc" in c.Spawner.args
    per = namespace["PER_LEARNER_MIB"]
    assert namespace["learners_at_once"](namespace["HUB_AND_PROXY_MIB"] + 8 * per) == 8
    assert namespace["learners_at_once"](0) == 0  # memory unknown: no limit
    assert c.Authenticator.blocked_users == {"root"}


def test_root_is_refused_with_a_message_that_says_why(monkeypatch):
    from tornado.web import HTTPError

    namespace, _ = load(monkeypatch)
    with pytest.raises(HTTPError, match="is root: learners need an ordinary account") as refused:
        namespace["refuse_root"]("root")
    assert refused.value.status_code == 403
    with pytest.raises(HTTPError, match="no Unix account"):
        namespace["refuse_root"]("no-such-learner-here")


def test_the_copy_hook_copies_once_without_solutions_and_keeps_a_learners_work(monkeypatch, tmp_path):
    namespace, c = load(monkeypatch)
    home = tmp_path / "home"
    home.mkdir()
    hook = c.Spawner.pre_spawn_hook
    hook.__globals__["home_of"] = lambda name: home  # the learner's home, without a Unix account
    hook.__globals__["refuse_root"] = lambda name: None
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
    assert os.stat(home).st_mode & 0o777 == 0o700 and os.stat(home / ".tmp").st_mode & 0o777 == 0o700
