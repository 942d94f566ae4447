"""A JupyterHub for a class on one machine you control: the fallback when public Binder is full or too small.

Every learner gets JupyterLab with their own copy of the notebooks (copied on first login from a fixed version of
the repository) and their own kernels; statelab's servers listen on 127.0.0.1 on free ports, so thirty learners
on one machine do not touch each other's (benchmarks/CLASS.md measured 8 learners at once on 2 cores: 0 failures).

Set up (as root, once), then run ``jupyterhub -f classroom/jupyterhub_config.py`` from this folder's parent:

    git clone <the repository> /srv/statelab && cd /srv/statelab && git checkout <a tag, e.g. v0.1.0>
    python3 -m venv /srv/hub && /srv/hub/bin/pip install jupyterhub -r requirements.txt
    apt-get install haproxy   # notebook 13 puts HAProxy in front of its workers (it says so if it is missing)
    # learners log in with their Unix accounts (PAM, JupyterHub's default): create them with adduser

Size the machine from what one learner needs: a notebook's kernel peaks at about 140 MiB (CI measures it for every
notebook), JupyterLab adds about 150 MiB, so 1 GiB per learner leaves room for two notebooks open at once.
tests/test_classroom.py loads this file and runs its copy hook on a temporary home.
"""

import os
import pwd
import shutil
from pathlib import Path

COURSE = Path(os.environ.get("STATELAB_COURSE", "/srv/statelab"))  # a checkout at a fixed tag or commit
FOLDER = "statelab"                                                 # the learner's copy, in their home
START = "notebooks/00_start_here.ipynb"


def home_of(name: str) -> Path:
    return Path(pwd.getpwnam(name).pw_dir)


def copy_course(spawner) -> None:
    """On a learner's first start, copy the notebooks and labs into their home (never over their own work)."""
    home = home_of(spawner.user.name)
    target = home / FOLDER
    if target.exists():
        return
    shutil.copytree(COURSE, target, ignore=shutil.ignore_patterns(  # names, at any depth
        ".git", "solutions", "tests", ".ci", "_build", "test-artifacts", ".venv", "venv", "__pycache__", "*.egg-info"))
    owner = home.stat()
    for path in [target, *target.rglob("*")]:
        os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)


c = get_config()  # noqa: F821  (JupyterHub provides get_config when it loads this file)

c.JupyterHub.bind_url = "http://127.0.0.1:8000"          # put your TLS proxy (nginx, Caddy) in front of it
c.Spawner.pre_spawn_hook = copy_course
c.Spawner.notebook_dir = "~"
c.Spawner.default_url = f"/lab/tree/{FOLDER}/{START}"
c.Spawner.mem_limit = "1G"    # enforced by spawners that can (SystemdSpawner, DockerSpawner, KubeSpawner)
c.Spawner.cpu_limit = 1.0
c.Authenticator.allow_all = True  # every local Unix account may log in; list them in allowed_users instead
