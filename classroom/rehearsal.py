"""A rehearsal of a class on a real JupyterHub: N learners' servers started from ``classroom/jupyterhub_config.py``,
each running notebook 00 and lab 01 through the hub, with their spawn times, memory, failures, and what is left
afterwards. ``benchmarks/class_on_a_hub.py`` writes its figures (``benchmarks/CLASS.md``);
``tests/production/test_hub.py`` runs it with 4 learners, plus an isolation check between two of them. Both use
this module; a test never imports ``benchmarks/``.

What it does, as an instructor's class would: creates N Unix accounts (learners), starts JupyterHub from the
classroom config (its LocalProcessSpawner, copy hook, culler and limits) with a test authenticator, and, for every
learner at once, through the hub's REST API and the proxy (``/user/<name>/...``) only:

1. starts the learner's server and times it (the hub's API, as the login page would);
2. reads notebook 00 from the learner's own copy (Jupyter's contents API), uploads the solved lab 01 as the
   learner's work (``labs/solutions/01_...``: the copy the hub gives learners has no solutions), and runs both in
   a kernel of the learner's server (sessions API, then every code cell over the kernel's websocket, Jupyter's
   messaging protocol), checking that no cell failed and that lab 01's three checks print PASS;
3. samples the memory (RSS) of the hub, its proxy, and each learner's processes, split into the JupyterLab server,
   kernels, and the rest (statelab's servers);
4. stops the hub and lists every process it or a learner started that is still alive (goal: none).

It runs as root on Linux (it creates accounts, as a hub's admin would), needs ``jupyterhub`` and
``jupyterhub-idle-culler`` (pip) and ``configurable-http-proxy`` (npm), and removes the accounts and their homes
afterwards.

Import it from the repository's root with ``PYTHONPATH=$PWD``. Nothing listens on anything but 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLASSROOM = ROOT / "classroom" / "jupyterhub_config.py"
FOLDER = "statelab"  # the learner's copy in their home (the classroom config's FOLDER)
NOTEBOOK = "notebooks/00_start_here.ipynb"
LAB = "labs/01_survive_a_crash.ipynb"
SOLUTION = "labs/solutions/01_survive_a_crash.ipynb"
LAB_CHECKS = 3       # lab 01's check cells, each printing one PASS line
CELL_TIMEOUT = 180   # seconds for one cell on a crowded machine


def missing() -> str | None:
    """Why a real hub cannot start here (None when it can)."""
    if sys.platform != "linux":
        return "a hub of Unix accounts needs Linux"
    if os.geteuid() != 0:
        return "creating learner accounts and starting their servers needs root"
    for program in ("useradd", "userdel"):
        if shutil.which(program) is None:
            return f"{program} is missing (passwd package)"
    if shutil.which("configurable-http-proxy") is None:
        return "configurable-http-proxy is missing: npm install -g configurable-http-proxy"
    closed = [str(p) for p in (ROOT, *ROOT.parents) if not os.stat(p).st_mode & 0o001]
    if closed:
        return (f"learners (other Unix users) cannot reach the repository at {ROOT}: {closed[0]} is closed to "
                "others; clone it where they can read it, or chmod o+x that folder")
    for module in ("jupyterhub", "jupyterhub_idle_culler", "websocket", "psutil"):
        try:
            __import__(module)
        except ImportError:
            return f"Python package {module} is missing: pip install -r requirements-test.txt"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------------- accounts
class Accounts:
    """Throw-away Unix accounts for learners, homes under one temporary folder; ``remove()`` deletes them all."""

    def __init__(self, count: int) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="slhub-"))
        self.base.chmod(0o755)  # learners must reach their homes; each home is made 0700 by the hub's hook
        tag = secrets.token_hex(2)
        self.names = [f"sl{tag}l{i}" for i in range(count)]
        self.created: list[str] = []
        for name in self.names:
            subprocess.run(["useradd", "--create-home", "--home-dir", str(self.base / name), "--shell", "/bin/false",
                            "--user-group", name], check=True, capture_output=True)
            self.created.append(name)

    def uid(self, name: str) -> int:
        import pwd

        return pwd.getpwnam(name).pw_uid

    def home(self, name: str) -> Path:
        return self.base / name

    def remove(self) -> None:
        for name in self.created:
            subprocess.run(["userdel", "--force", "--remove", name], capture_output=True)
        self.created = []
        shutil.rmtree(self.base, ignore_errors=True)


def runs_as(uid: int, argv: list[str]) -> bool:
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "/usr/bin/env", *argv],
                          capture_output=True, timeout=60).returncode == 0


def learner_python(accounts: Accounts) -> str:
    """A Python the learners can run, with this environment's packages.

    Usually ``sys.executable``. Where it lives in a folder other users cannot enter (pyenv under /root, as on the
    machines here), a virtualenv of a system Python of the same version is made in the accounts' folder, and a
    ``.pth`` file there adds this environment's site-packages (same version, same ABI).
    """
    import site
    import sysconfig

    uid = accounts.uid(accounts.names[0])
    if runs_as(uid, [sys.executable, "-c", "import jupyterhub, statelab"]):
        return sys.executable
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for folder in ("/usr/bin", "/usr/local/bin"):
        system = Path(folder) / version
        if system.exists() and runs_as(uid, [str(system), "-c", "1"]):
            break
    else:
        raise RuntimeError(f"{sys.executable} cannot be run by other users, and there is no /usr/bin/{version}")
    venv = accounts.base / "python"
    subprocess.run([str(system), "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (purelib / "statelab-test.pth").write_text("\n".join([*site.getsitepackages(), str(ROOT)]) + "\n")
    python = str(venv / "bin" / "python")
    check = "import jupyterhub, statelab, redis; redis.Redis()"  # redis-py on 3.11.2 needs async-timeout
    if not runs_as(uid, [python, "-c", check]):
        raise RuntimeError(f"the learners' Python {python} ({system}) cannot run `{check}` with this environment's "
                           "packages (built for another patch release?): install what it misses here")
    return python


# ---------------------------------------------------------------------------------------------------- the hub
class Hub:
    """JupyterHub started from the classroom config, on free 127.0.0.1 ports, with a dummy authenticator and an
    admin service token for the test."""

    def __init__(self, accounts: Accounts) -> None:
        import requests

        self.accounts = accounts
        self.dir = Path(tempfile.mkdtemp(prefix="slhub-run-"))
        self.port, self.hub_port, self.api_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(32)
        self.ghost = f"{accounts.names[0]}x"  # a hub user with no Unix account: its spawn must fail clearly
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {self.token}"
        self.process: subprocess.Popen | None = None
        self.seen: dict[int, tuple[float, str]] = {}  # pid -> (create_time, what): every process of the class
        self.log = self.dir / "hub.log"
        self.python = learner_python(accounts)

    def config(self) -> Path:
        """The test's config: the classroom one, plus ports, a dummy authenticator and the test's token."""
        path = self.dir / "jupyterhub_config.py"
        path.write_text(f"""
c = get_config()  # noqa: F821
load_subconfig({str(CLASSROOM)!r})  # noqa: F821
c.JupyterHub.bind_url = {self.url!r}
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{self.hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.api_port}"
c.ConfigurableHTTPProxy.pid_file = {str(self.dir / "proxy.pid")!r}
c.JupyterHub.db_url = "sqlite:///{self.dir / "hub.sqlite"}"
c.JupyterHub.cookie_secret_file = {str(self.dir / "cookie_secret")!r}
c.JupyterHub.pid_file = {str(self.dir / "hub.pid")!r}
c.Spawner.cmd = [{self.python!r}, "-m", "jupyterhub.singleuser"]
c.Spawner.environment.update({self.jupyter_paths()!r})
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {secrets.token_urlsafe(16)!r}
c.Authenticator.allow_all = False
c.Authenticator.allowed_users = {set(self.accounts.names) | {self.ghost}!r}
c.JupyterHub.services.append({{"name": "statelab-test", "api_token": {self.token!r}}})
c.JupyterHub.load_roles.append({{"name": "admin", "services": ["statelab-test"]}})
""")
        return path

    def jupyter_paths(self) -> dict[str, str]:
        """For a bridged learners' Python (see learner_python): Jupyter's config and data folders are found from
        ``sys.prefix``, so point them at this environment's (server extensions such as jupyter-server-proxy)."""
        if self.python == sys.executable:
            return {}
        return {"JUPYTER_CONFIG_PATH": str(Path(sys.prefix) / "etc" / "jupyter"),
                "JUPYTER_PATH": str(Path(sys.prefix) / "share" / "jupyter")}

    def start(self, timeout: float = 90) -> Hub:
        env = dict(os.environ, STATELAB_COURSE=str(ROOT),
                   PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
                   PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(self.config())],
                                            cwd=self.dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the hub exited ({self.process.returncode}):\n{self.log_tail()}")
            with contextlib.suppress(Exception):
                if self.http.get(f"{self.url}/hub/api/", timeout=2).ok:
                    self.remember()
                    return self
            time.sleep(0.5)
        raise RuntimeError(f"the hub did not answer in {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def api(self, method: str, path: str, **kw):
        return self.http.request(method, f"{self.url}/hub/api{path}", timeout=30, **kw)

    def spawn(self, name: str, timeout: float = 180) -> float:
        """Start a learner's server and wait until the hub says it is ready; seconds taken."""
        start = time.perf_counter()
        deadline = time.monotonic() + timeout
        while True:  # concurrent_spawn_limit: the hub answers 429 "try again" past it
            r = self.api("POST", f"/users/{name}/server")
            if r.status_code in (201, 202, 400) or time.monotonic() > deadline:
                break
            if r.status_code != 429:
                raise RuntimeError(f"spawn {name}: {r.status_code} {r.text[:300]}\n{self.log_tail(15)}")
            time.sleep(1)
        while time.monotonic() < deadline:
            user = self.api("GET", f"/users/{name}").json()
            server = user.get("servers", {}).get("")
            if server and server.get("ready"):
                return time.perf_counter() - start
            if not server and not user.get("pending"):
                raise RuntimeError(f"the server of {name} did not start:\n{self.log_tail()}")
            time.sleep(0.5)
        raise RuntimeError(f"the server of {name} was not ready in {timeout:.0f} s")

    def failed_spawn(self, name: str, timeout: float = 60) -> str:
        """Ask for a server that cannot start; the message the hub gives (what a learner would read)."""
        self.api("POST", f"/users/{name}")
        r = self.api("POST", f"/users/{name}/server")
        if r.status_code >= 400:
            return r.text
        deadline = time.monotonic() + timeout  # a slow spawn: the hub answers 202 and reports the end later
        while time.monotonic() < deadline:
            progress = self.http.get(f"{self.url}/hub/api/users/{name}/server/progress", timeout=30, stream=True)
            text = progress.text if progress.ok else ""
            if "failed" in text.lower():
                return text
            time.sleep(1)
        return ""

    def user_token(self, name: str) -> str:
        r = self.api("POST", f"/users/{name}/tokens", json={"note": "statelab test", "expires_in": 3600})
        r.raise_for_status()
        return r.json()["token"]

    def descendants(self) -> list:
        import psutil

        if self.process is None:
            return []
        with contextlib.suppress(psutil.Error):
            return psutil.Process(self.process.pid).children(recursive=True)
        return []

    def remember(self) -> None:
        """Note every process of the class (the hub's descendants, every learner's processes) to check later."""
        import psutil

        uids = {self.accounts.uid(n) for n in self.accounts.created}
        procs = self.descendants()
        if self.process is not None:
            with contextlib.suppress(psutil.Error):
                procs.append(psutil.Process(self.process.pid))
        for p in psutil.process_iter(["uids"]):
            if p.info["uids"] and p.info["uids"].real in uids:
                procs.append(p)
        for p in procs:
            with contextlib.suppress(psutil.Error):
                self.seen.setdefault(p.pid, (p.create_time(), " ".join(p.cmdline())[:160]))

    def stop(self, timeout: float = 60) -> None:
        """Stop the hub as an admin would (SIGTERM: it stops every server, the proxy and its services)."""
        if self.process is None:
            return
        self.remember()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def leftovers(self, grace: float = 10) -> list[str]:
        """Processes of the class still alive after stop() (waits up to ``grace`` s for them to go)."""
        import psutil

        deadline = time.monotonic() + grace
        while True:
            alive = []
            for pid, (created, what) in self.seen.items():
                with contextlib.suppress(psutil.Error):
                    p = psutil.Process(pid)
                    if abs(p.create_time() - created) < 0.01 and p.status() != psutil.STATUS_ZOMBIE:
                        alive.append(f"{pid}: {what}")
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.5)

    def kill_leftovers(self) -> None:
        import psutil

        for pid, (created, _) in self.seen.items():
            with contextlib.suppress(psutil.Error):
                p = psutil.Process(pid)
                if abs(p.create_time() - created) < 0.01:
                    p.kill()

    def close(self) -> None:
        self.stop()
        self.kill_leftovers()
        keep = os.environ.get("STATELAB_HUB_LOG")  # a path: keep the hub's log there (for a failed run)
        if keep:
            with contextlib.suppress(OSError):
                shutil.copyfile(self.log, keep)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------- a learner
@dataclass
class Cell:
    index: int
    text: str = ""     # what it printed or displayed (text/plain, text/markdown, text/html)
    error: str = ""    # ename: evalue, when it failed


@dataclass
class NotebookRun:
    learner: str
    notebook: str
    seconds: float = 0.0
    cells: list[Cell] = field(default_factory=list)
    error: str = ""    # a failure outside a cell (the kernel did not start, a timeout)

    @property
    def failed(self) -> list[str]:
        return ([self.error] if self.error else []) + [f"cell {c.index}: {c.error}" for c in self.cells if c.error]

    @property
    def text(self) -> str:
        return "\n".join(c.text for c in self.cells)


class Learner:
    """One learner's server, reached only through the hub's proxy with the learner's own API token."""

    def __init__(self, hub: Hub, name: str, token: str) -> None:
        import requests

        self.hub, self.name = hub, name
        self.base = f"{hub.url}/user/{name}"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {token}"
        self.token = token

    def contents(self, path: str) -> dict:
        r = self.http.get(f"{self.base}/api/contents/{FOLDER}/{path}", params={"content": 1}, timeout=30)
        r.raise_for_status()
        return r.json()["content"]

    def upload(self, path: str, notebook: dict) -> None:
        r = self.http.put(f"{self.base}/api/contents/{FOLDER}/{path}", timeout=30,
                          json={"type": "notebook", "format": "json", "content": notebook})
        r.raise_for_status()

    @contextlib.contextmanager
    def kernel(self, path: str):
        """A kernel of this learner's server, for the notebook at ``path`` (its folder is the kernel's cwd)."""
        r = self.http.post(f"{self.base}/api/sessions", timeout=60, json={
            "path": f"{FOLDER}/{path}", "name": Path(path).name, "type": "notebook", "kernel": {"name": "python3"}})
        r.raise_for_status()
        session = r.json()
        try:
            with KernelChannel(self, session["kernel"]["id"]) as channel:
                yield channel
        finally:
            with contextlib.suppress(Exception):
                self.http.delete(f"{self.base}/api/sessions/{session['id']}", timeout=60)

    def run(self, path: str) -> NotebookRun:
        """Every code cell of the notebook at ``path`` in the learner's copy, in one fresh kernel, in order."""
        run = NotebookRun(self.name, path)
        start = time.perf_counter()
        try:
            notebook = self.contents(path)
            with self.kernel(path) as kernel:
                for index, cell in enumerate(notebook["cells"]):
                    if cell["cell_type"] != "code":
                        continue
                    source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
                    result = kernel.execute(source, index)
                    run.cells.append(result)
                    if result.error:
                        break
        except Exception as e:  # noqa: BLE001 - a failed run is reported, not raised
            run.error = f"{type(e).__name__}: {e}"[:500]
        run.seconds = time.perf_counter() - start
        return run


class KernelChannel:
    """A kernel's websocket through the hub's proxy (Jupyter messaging protocol, JSON frames)."""

    def __init__(self, learner: Learner, kernel_id: str) -> None:
        self.learner, self.kernel_id = learner, kernel_id
        self.session = uuid.uuid4().hex

    def __enter__(self) -> KernelChannel:
        import websocket

        url = self.learner.base.replace("http://", "ws://") + f"/api/kernels/{self.kernel_id}/channels"
        self.ws = websocket.create_connection(f"{url}?session_id={self.session}", timeout=CELL_TIMEOUT,
                                              header=[f"Authorization: token {self.learner.token}"])
        self.request("kernel_info_request", {}, wait_for="kernel_info_reply", timeout=60)
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()

    def send(self, msg_type: str, content: dict) -> str:
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": msg_type, "username": self.learner.name,
                       "session": self.session, "date": "", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "content": content, "channel": "shell", "buffers": []}))
        return msg_id

    def messages(self, msg_id: str, timeout: float):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no answer from the kernel in {timeout:.0f} s")
            self.ws.settimeout(left)
            raw = self.ws.recv()
            if isinstance(raw, bytes):  # a binary frame (widget buffers): not ours to read
                continue
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                yield msg

    def request(self, msg_type: str, content: dict, wait_for: str, timeout: float) -> dict:
        msg_id = self.send(msg_type, content)
        for msg in self.messages(msg_id, timeout):
            if msg["header"]["msg_type"] == wait_for:
                return msg
        raise AssertionError("unreachable")

    def execute(self, code: str, index: int = 0, timeout: float = CELL_TIMEOUT) -> Cell:
        cell = Cell(index)
        msg_id = self.send("execute_request", {"code": code, "silent": False, "store_history": True,
                                               "user_expressions": {}, "allow_stdin": False, "stop_on_error": True})
        texts, replied, idle = [], False, False
        for msg in self.messages(msg_id, timeout):
            kind, content = msg["header"]["msg_type"], msg.get("content", {})
            if kind == "stream":
                texts.append(content.get("text", ""))
            elif kind in ("display_data", "execute_result", "update_display_data"):
                data = content.get("data", {})
                texts.extend(str(data[m]) for m in ("text/plain", "text/markdown", "text/html") if m in data)
            elif kind == "error":
                cell.error = f"{content.get('ename')}: {content.get('evalue')}"[:500]
            elif kind == "status" and content.get("execution_state") == "idle":
                idle = True
            elif kind == "execute_reply":
                replied = True
                if content.get("status") != "ok" and not cell.error:
                    cell.error = f"{content.get('ename', 'error')}: {content.get('evalue', '')}"[:500]
            if replied and idle:
                break
        cell.text = "".join(texts)
        return cell


# ---------------------------------------------------------------------------------------------------- memory
class Sampler:
    """Peak RSS, sampled every ``every`` seconds: the hub, its proxy, and per learner (server, kernels, other)."""

    def __init__(self, hub: Hub, every: float = 1.0) -> None:
        self.hub, self.every = hub, every
        self.uids = {hub.accounts.uid(n): n for n in hub.accounts.created}
        self.peak: dict[str, dict[str, float]] = {n: {} for n in self.uids.values()}
        self.peak["(hub)"], self.peak["(proxy)"] = {}, {}
        self.others: set[str] = set()  # command lines of the learners' other processes (neither server nor kernel)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def kind(cmdline: list[str]) -> str:
        line = " ".join(cmdline)
        if "jupyterhub-singleuser" in line or "jupyterhub.singleuser" in line:
            return "server"
        if "ipykernel" in line:
            return "kernel"
        return "statelab"

    def sample(self) -> None:
        import psutil

        mib = 2**20
        now: dict[str, dict[str, float]] = {n: {} for n in self.peak}
        with contextlib.suppress(psutil.Error):
            hub = psutil.Process(self.hub.process.pid)
            now["(hub)"]["total"] = hub.memory_info().rss / mib
        for child in self.hub.descendants():
            with contextlib.suppress(psutil.Error):
                if "configurable-http-proxy" in " ".join(child.cmdline()):
                    now["(proxy)"]["total"] = now["(proxy)"].get("total", 0) + child.memory_info().rss / mib
        for p in psutil.process_iter(["uids", "cmdline", "memory_info"]):
            uids, mem = p.info["uids"], p.info["memory_info"]
            if not uids or uids.real not in self.uids or mem is None:
                continue
            learner = now[self.uids[uids.real]]
            kind = self.kind(p.info["cmdline"] or [])
            if kind == "statelab":
                words = " ".join(Path(a).name if a.startswith("/") else a for a in (p.info["cmdline"] or ["?"])[:4])
                self.others.add(" ".join(words.replace("`", "'").split())[:60])
            learner[kind] = learner.get(kind, 0) + mem.rss / mib
            learner["largest " + kind] = max(learner.get("largest " + kind, 0), mem.rss / mib)
            learner["total"] = learner.get("total", 0) + mem.rss / mib
        for name, parts in now.items():
            for kind, value in parts.items():
                self.peak[name][kind] = max(self.peak[name].get(kind, 0), value)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            with contextlib.suppress(Exception):
                self.sample()
                self.hub.remember()

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.thread.join(10)


# ---------------------------------------------------------------------------------------------------- the class
@dataclass
class LearnerResult:
    name: str
    spawn_s: float = 0.0
    runs: list[NotebookRun] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    whoami: dict = field(default_factory=dict)  # uid, cwd, TMPDIR, home as the learner's kernel sees them
    total_s: float = 0.0


WHOAMI = """import json, os, tempfile
print("WHOAMI", json.dumps({"uid": os.getuid(), "cwd": os.getcwd(), "tmp": tempfile.gettempdir(),
                            "home": os.path.expanduser("~")}))"""


def lab_failures(run: NotebookRun) -> list[str]:
    """Lab 01 passes when no cell failed and each of its checks printed PASS (none NOT YET)."""
    text = run.text
    problems = list(run.failed)
    if not run.failed and (text.count("PASS ·") < LAB_CHECKS or "NOT YET" in text):
        problems.append(f"{text.count('PASS ·')} of {LAB_CHECKS} checks PASS; NOT YET: {'NOT YET' in text}")
    return problems


def learner_works(hub: Hub, name: str, solution: dict) -> LearnerResult:
    """One learner: start their server, run notebook 00 and the solved lab 01 in it, through the hub."""
    result = LearnerResult(name)
    start = time.perf_counter()
    try:
        result.spawn_s = hub.spawn(name)
        learner = Learner(hub, name, hub.user_token(name))
        learner.upload(LAB, solution)  # the learner's own solution, saved into their copy
        for path in (NOTEBOOK, LAB):
            run = learner.run(path)
            result.runs.append(run)
            result.failures += [f"{path}: {p}" for p in (lab_failures(run) if path == LAB else run.failed)]
        with learner.kernel(NOTEBOOK) as kernel:
            cell = kernel.execute(WHOAMI)
            line = next((ln for ln in cell.text.splitlines() if ln.startswith("WHOAMI ")), "WHOAMI {}")
            result.whoami = json.loads(line.removeprefix("WHOAMI "))
    except Exception as e:  # noqa: BLE001 - reported as the learner's failure
        result.failures.append(f"{type(e).__name__}: {e}"[:800])
    result.total_s = time.perf_counter() - start
    return result


@dataclass
class ClassReport:
    learners: list[LearnerResult]
    memory: dict[str, dict[str, float]]
    seconds: float
    leftovers: list[str]
    hub_log: str = ""
    others: tuple[str, ...] = ()

    @property
    def failures(self) -> list[str]:
        return [f"{r.name}: {f}" for r in self.learners for f in r.failures]


def solved_lab() -> dict:
    import nbformat

    return json.loads(nbformat.writes(nbformat.read(ROOT / SOLUTION, as_version=4)))


@contextlib.contextmanager
def a_class(learners: int):
    """Accounts, and a hub started for them; everything removed afterwards (also on error)."""
    accounts = Accounts(learners)
    hub = None
    try:
        hub = Hub(accounts).start()
        yield hub
    finally:
        if hub is not None:
            hub.close()
        accounts.remove()


def run_class(hub: Hub, then=None) -> ClassReport:
    """Every learner of ``hub`` at once; ``then(hub, results)`` runs before the hub stops (the isolation check)."""
    solution = solved_lab()
    start = time.perf_counter()
    with Sampler(hub) as sampler, ThreadPoolExecutor(len(hub.accounts.names)) as pool:
        results = list(pool.map(lambda n: learner_works(hub, n, solution), hub.accounts.names))
        sampler.sample()
    seconds = time.perf_counter() - start
    if then is not None:
        then(hub, results)
    log = hub.log_tail(60)
    hub.stop()
    return ClassReport(results, sampler.peak, seconds, hub.leftovers(), log, tuple(sorted(sampler.others)))


