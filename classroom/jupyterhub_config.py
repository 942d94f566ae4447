"""A JupyterHub for a class on one machine you control: the fallback when public Binder is full or too small.

Every learner logs in with their own Unix account and gets JupyterLab with their own copy of the course (copied on
first login from a fixed version of the repository, student version: no lab solutions) and their own kernels.
``tests/test_hub.py`` starts a real hub from this file (4 learners: every one runs notebook 00 and lab 01 to PASS;
a second learner cannot read the first one's files; nothing is left running after the hub stops), and
``benchmarks/class_on_a_hub.py`` measured 8 learners on 2 cores (``benchmarks/CLASS.md``).

Set up (as root, once), then run ``jupyterhub -f /srv/statelab/classroom/jupyterhub_config.py`` as root:

    git clone <the repository> /srv/statelab && cd /srv/statelab
    git checkout student-<tag>      # a student release: no lab solutions (tools/make_student_release.py)
    python3 -m venv /srv/hub && /srv/hub/bin/pip install jupyterhub jupyterhub-idle-culler -r requirements.txt
    apt-get install nodejs npm haproxy      # HAProxy: notebook 13 puts it in front of its workers
    npm install -g configurable-http-proxy  # the hub's proxy
    adduser --disabled-password <learner>     # one Unix account per learner; they log in with its password (PAM)
    PATH=/srv/hub/bin:$PATH jupyterhub -f /srv/statelab/classroom/jupyterhub_config.py

What this file enforces, and what it does not (one machine, ``LocalProcessSpawner``):

- **Memory and CPU limits: none.** ``LocalProcessSpawner`` ignores ``mem_limit`` and ``cpu_limit`` (jupyterhub issue
  1584), so they are not set here; a runaway learner can take the whole machine. Limits that hold need a spawner
  that enforces them: ``jupyterhub-systemdspawner`` on one machine (``STATELAB_SPAWNER=systemd`` below: a systemd
  unit per learner with ``MemoryMax`` and ``CPUQuota``), or Kubernetes (``classroom/zero-to-jupyterhub/``).
- **Size the machine instead**, from ``benchmarks/CLASS.md`` (8 learners at once on 2 cores, each running notebook
  00 and lab 01): 327-391 MiB per active learner at peak (JupyterLab server, kernels, statelab's helpers), so
  ``PER_LEARNER_MIB`` = 450, and about a quarter of a core per learner working through a notebook (8 on 2 cores: no
  failure, a notebook about twice as slow as alone). Notebook 13 and lab 06 also start gunicorn, Valkey and
  HAProxy, which that run did not measure. ``active_server_limit`` below is
  set from the machine's memory and that figure.
- **Files: kept apart.** Each learner's home is made 0700 and their temporary folder (``TMPDIR``) is inside it;
  statelab keeps its Valkey password in a 0600 file in a 0700 folder, Valkey listens on a Unix socket there,
  journals are 0600, kernels talk to JupyterLab over Unix sockets (``ipc``) in the learner's 0700 runtime folder.
- **Loopback traffic: not kept apart.** Every learner shares the machine's 127.0.0.1: another learner's program
  can send requests to your statelab servers' ports (it cannot take a port over while a server is down, nor reach
  Valkey). Only a network namespace per learner separates that: Kubernetes (one pod per learner, Zero to
  JupyterHub's default network policy), or ``SystemdSpawner`` with ``PrivateNetwork=yes`` *only* where the
  single-user server is reached another way than TCP on loopback (with ``PrivateNetwork`` the hub's proxy cannot
  reach it, so it does not fit this file as is).
- **Server pages through the proxy** (``/user/<name>/proxy/<port>/``, jupyter-server-proxy): reachable only with
  that learner's own Jupyter login (another learner gets 403), and statelab scopes its cookies to that path, so one
  learner's cookies never reach another's pages. All learners share one browser origin, though; for a separate
  origin per learner set ``c.JupyterHub.subdomain_host`` (needs wildcard DNS and TLS).
- **Root:** the hub must run as root to start servers as the learners; ``root`` itself may not be a learner, and a
  learner whose account is uid 0 is refused with a message that says so (JupyterLab refuses to run as root, and the
  hub would only show a 500).
"""

import os
import pwd
import shutil
import sys
from pathlib import Path

COURSE = Path(os.environ.get("STATELAB_COURSE", "/srv/statelab"))  # a checkout at a fixed tag or commit
FOLDER = "statelab"                                                 # the learner's copy, in their home
START = "notebooks/00_start_here.ipynb"
SPAWNER = os.environ.get("STATELAB_SPAWNER", "local")               # "local" (LocalProcessSpawner) or "systemd"

# Sizing, from benchmarks/CLASS.md (class_on_a_hub.py, 8 learners on 2 cores): one learner running notebook 00 and
# lab 01 peaked at 327 MiB (median) to 391 MiB (worst): JupyterLab server, kernels, helpers; rounded up. The hub
# (about 125 MiB) and its proxy (about 60 MiB) once for the machine, rounded up.
PER_LEARNER_MIB = 450
HUB_AND_PROXY_MIB = 250
MEMORY_LIMIT = "1G"          # per learner, where the spawner enforces it: two notebooks open at once, with room
CPU_LIMIT = 1.0              # one core at most per learner, where the spawner enforces it
IDLE_MINUTES = 60            # a server unused this long is stopped (the learner's files stay)
KERNEL_IDLE_MINUTES = 20     # a kernel unused this long is shut down (its statelab servers with it)


def home_of(name: str) -> Path:
    return Path(pwd.getpwnam(name).pw_dir)


def temp_folder(home: Path) -> Path:
    """The learner's own temporary folder (TMPDIR): inside their 0700 home, short enough for Unix socket paths."""
    return home / ".tmp"


def refuse_root(name: str) -> None:
    """A learner must not be root: JupyterLab refuses to start as root, and the hub would show only a 500.

    The refusal is an HTTPError: the hub shows its message to the learner (and in its API answer); any other
    exception becomes a bare "Internal Server Error" (tests/test_hub.py checks this in a real hub)."""
    from tornado.web import HTTPError  # JupyterHub runs on tornado

    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        raise HTTPError(403, f"there is no Unix account {name!r} on this machine: ask your instructor to "
                             f"create it (adduser {name})") from None
    if uid == 0:
        raise HTTPError(403, f"{name!r} is root: learners need an ordinary account (adduser), never uid 0")
    if SPAWNER == "local" and os.geteuid() not in (0, uid):
        raise HTTPError(500, "the hub runs as an ordinary user, so it cannot start servers as other users: "
                             "run jupyterhub as root, or use STATELAB_SPAWNER=systemd")


def copy_course(spawner) -> None:
    """Before each start: refuse root; make the learner's home and temporary folder private (0700); on the first
    start, copy the course into their home (never over their own work)."""
    refuse_root(spawner.user.name)
    home = home_of(spawner.user.name)
    owner = home.stat()
    home.chmod(0o700)
    tmp = temp_folder(home)
    tmp.mkdir(mode=0o700, exist_ok=True)
    os.chown(tmp, owner.st_uid, owner.st_gid)
    target = home / FOLDER
    if target.exists():
        return
    shutil.copytree(COURSE, target, ignore=shutil.ignore_patterns(  # names, at any depth
        ".git", "solutions", "tests", ".ci", "_build", "test-artifacts", ".venv", "venv", "__pycache__", "*.egg-info"))
    for path in [target, *target.rglob("*")]:
        os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)


def machine_mib() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError, AttributeError):
        return 0


def learners_at_once(total_mib: int) -> int:
    """How many learners' servers may run at once on a machine with ``total_mib`` of memory (0 = no limit)."""
    return max(1, (total_mib - HUB_AND_PROXY_MIB) // PER_LEARNER_MIB) if total_mib else 0


c = get_config()  # noqa: F821  (JupyterHub provides get_config when it loads this file)

c.JupyterHub.bind_url = "http://127.0.0.1:8000"          # put your TLS proxy (nginx, Caddy) in front of it
c.Spawner.pre_spawn_hook = copy_course
c.Spawner.notebook_dir = "~"
c.Spawner.default_url = f"/lab/tree/{FOLDER}/{START}"
c.Spawner.environment = {"TMPDIR": lambda spawner: str(temp_folder(home_of(spawner.user.name)))}
c.Spawner.args = [
    "--KernelManager.transport=ipc",                       # no TCP ports for kernels (no port race, no squatting)
    f"--MappingKernelManager.cull_idle_timeout={KERNEL_IDLE_MINUTES * 60}",
    "--MappingKernelManager.cull_interval=300",
]
c.Authenticator.allow_all = True  # every local Unix account may log in; list them in allowed_users instead
c.Authenticator.blocked_users = {"root"}

# Starting servers: on a 2-core machine (shared with other work) one server took about 14 s to start; with 8 asked
# at once the median was 21-39 s over four runs (benchmarks/CLASS.md has the last); more at once only queue.
c.JupyterHub.concurrent_spawn_limit = 4       # past it, a login is asked to retry in a moment (HTTP 429)
c.JupyterHub.active_server_limit = learners_at_once(machine_mib())
c.Spawner.start_timeout = 120                 # seconds for a server to start on a busy machine (default 60)
c.Spawner.http_timeout = 60                   # seconds for it to answer once started (default 30)

if SPAWNER == "systemd":  # pip install jupyterhub-systemdspawner: limits that hold, private /tmp and devices
    c.JupyterHub.spawner_class = "systemdspawner.SystemdSpawner"
    c.SystemdSpawner.mem_limit = MEMORY_LIMIT
    c.SystemdSpawner.cpu_limit = CPU_LIMIT
    c.SystemdSpawner.isolate_tmp = True
    c.SystemdSpawner.isolate_devices = True
    c.SystemdSpawner.disable_user_sudo = True
elif SPAWNER != "local":
    raise ValueError(f"STATELAB_SPAWNER={SPAWNER!r}: use 'local' or 'systemd'")
else:  # LocalProcessSpawner ignores limits (jupyterhub issue 1584): none are set, see the docstring
    c.JupyterHub.spawner_class = "localprocess"

# Stop servers nobody uses (their files stay); the culler is a hub-managed service.
c.JupyterHub.services = [{
    "name": "idle-culler",
    "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={IDLE_MINUTES * 60}"],
}]
c.JupyterHub.load_roles = [{
    "name": "idle-culler",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["idle-culler"],
}]
