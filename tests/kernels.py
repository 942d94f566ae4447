"""The one harness that executes notebooks in tests: each notebook once per test session, Run All twice.

Every notebook in ``notebooks/`` and every lab solution in ``labs/solutions/`` is run by :func:`run_twice`, in
a fresh kernel of its own, on a temporary copy of its folder (a notebook may write files next to itself):

1. **Run All** (the learner's first run): timed from the kernel's start, then a probe records the kernel's peak
   memory, its threads, the TCP sockets it listens on (less those a fresh kernel listens on: its own
   machinery) and the processes it started;
2. **Run All again in the same kernel** (a learner re-running everything): probed the same way;
3. ``sl.stop_all()``, probed: nothing of statelab is left listening or running;
4. the cells once more from the top until a server is up, then the kernel is shut down as JupyterLab does it: it
   must exit by itself (exit code 0), no process it started may outlive it, and no port it served may still
   be listened on by one of them. (A port is not simply tried: on a shared machine another program may
   take a freed port at once.)

The probe reads the kernel's own listening sockets from ``/proc`` (Linux), so it depends on no statelab
internals and no notebook's contents. The tests that judge the results live in ``tests/notebooks/test_notebooks.py``
(budget, re-run safety, shutdown) and ``tests/notebooks/test_labs.py`` (each check cell says PASS); the session-scoped
fixture ``notebook_runs`` (root ``conftest.py``) runs what the selected tests need, ``WORKERS`` at a time.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import re
import shutil
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "labs" / "solutions").glob("*.ipynb"))
EXECUTED = NOTEBOOKS + SOLUTIONS  # what CI executes, once each (labs/*.ipynb are student versions: see test_labs)
NAMES = [p.relative_to(ROOT).as_posix() for p in EXECUTED]

MEMORY_LIMIT_MB = 200  # the project's peak kernel memory budget per notebook
# The promise made to learners (README): each notebook runs top to bottom in under 30 s, kernel start included.
# A slower machine may widen it with STATELAB_NOTEBOOK_TIMEOUT.
TIME_LIMIT_S = float(os.environ.get("STATELAB_NOTEBOOK_TIMEOUT", "30"))
CELL_TIMEOUT_S = TIME_LIMIT_S + 30  # a backstop for a hung cell; the budget check judges the time
# Two kernels at once: the notebooks wait on sockets and sleeps as much as they compute, so on two cores this
# takes about 60% of the sequential time.
WORKERS = int(os.environ.get("STATELAB_NOTEBOOK_WORKERS", "2"))
SHUTDOWN_WAIT_S = 10

def _statelab_socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets process ``pid`` holds open (Linux /proc; empty when it is gone or not ours).

    Used here and, by its source, inside the kernel's probe (PROBE), which cannot import this module."""
    import os

    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    return inodes


# Runs in the notebook's kernel and prints one JSON line. Werkzeug answers each request on a short-lived thread,
# so it first waits for those to end: they are traffic still draining, not leaks.
PROBE = inspect.getsource(_statelab_socket_inodes) + r'''
def _statelab_probe():
    import json, os, pathlib, re, socket, threading, time
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and any("process_request" in t.name for t in threading.enumerate()):
        time.sleep(0.02)
    children, keepers = None, []
    if os.path.isdir("/proc/self/fd"):  # Linux: every process this kernel started, and theirs
        parent = {}
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                parent[int(pid)] = int(pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
        family, grew = {os.getpid()}, True
        while grew:
            new = {pid for pid, ppid in parent.items() if ppid in family} - family
            family |= new
            grew = bool(new)
        children = sorted(family - {os.getpid()})
        # statelab's keeper (service/keeper.py) is reported apart: it runs while the kernel has a folder to remove
        # at death, such as a lab's workspace (sl.workspace), so it may rightly outlive sl.stop_all()
        for pid in list(children):
            try:
                command = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(part.endswith(b"/statelab/service/keeper.py") for part in command):
                children.remove(pid)
                keepers.append(pid)
    listening = None
    if os.path.isdir("/proc/self/fd"):  # Linux: the TCP sockets this kernel and its children listen on
        inodes = set()
        for pid in [os.getpid(), *children]:  # a server may be a child process (gunicorn, Valkey, HAProxy)
            inodes |= _statelab_socket_inodes(pid)
        listening = []
        for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
            try:
                rows = pathlib.Path(f"/proc/self/net/{table}").read_text().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                f = row.split()
                if f[3] == "0A" and f[9] in inodes:  # 0A: LISTEN
                    hexaddr, hexport = f[1].split(":")
                    raw = bytes.fromhex(hexaddr)
                    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                    listening.append([socket.inet_ntop(family, raw), int(hexport, 16)])
    status = pathlib.Path("/proc/self/status")
    hwm = re.search(r"VmHWM:\s+(\d+) kB", status.read_text()) if status.exists() else None
    print("STATELAB-PROBE", json.dumps({"threads": threading.active_count(),
                                        "names": sorted(t.name for t in threading.enumerate()),
                                        "listening": listening, "children": children, "keepers": keepers,
                                        "pid": os.getpid(),
                                        "peak_kib": int(hwm.group(1)) if hwm else None}))
_statelab_probe()
del _statelab_probe, _statelab_socket_inodes
'''
STOP_ALL = "import statelab as _sl\nprint('STATELAB-STOPPED', _sl.stop_all())"


@dataclass
class NotebookRun:
    """What happened to one notebook in its kernel (see the module docstring for the steps)."""

    name: str                                               # e.g. "notebooks/03_scalability.ipynb"
    executed: nbformat.NotebookNode | None = None           # the copy as the first Run All left it
    seconds: list[float] = field(default_factory=list)      # [kernel start + run 1, run 2]
    kernel_start_s: float = 0.0
    probes: dict[str, dict] = field(default_factory=dict)   # "fresh", "run 1", "run 2", "stop_all",
    #                                                         "before shutdown"
    kernel_exit_code: int | None = None
    shutdown_s: float = 0.0
    alive_after_exit: list[int] = field(default_factory=list)  # the kernel's processes alive after it exited
    still_listening: list[tuple[str, int]] = field(default_factory=list)  # ports one of them still listens on
    failed: str = ""        # the step that failed ("run 1", "run 2", ...), empty when every step ran
    error: str = ""
    workdir: Path | None = None  # the copy it ran in: its evidence journal (.statelab-evidence) is there

    def served(self, probe: str) -> list[tuple[str, int]]:
        """The sockets the notebook listened on at ``probe``: the kernel's, less those of a fresh kernel."""
        own = {tuple(a) for a in self.probes["fresh"]["listening"] or []}
        return sorted(tuple(a) for a in self.probes[probe]["listening"] or [] if tuple(a) not in own)

    def summary(self) -> str:
        if not self.seconds:
            return f"{self.name:42s} FAILED in {self.failed}: {self.error[:300]}"
        runs = " + ".join(f"{s:4.1f}" for s in self.seconds)
        peak = self.probes.get("run 1", {}).get("peak_kib")
        text = (f"{self.name:42s} runs {runs} s (kernel start {self.kernel_start_s:.1f} s), peak "
                f"{(peak or 0) / 1024:3.0f} MiB, threads {self.probes.get('run 1', {}).get('threads')} -> "
                f"{self.probes.get('run 2', {}).get('threads')}, shut down in {self.shutdown_s:.1f} s")
        return text + (f"; FAILED in {self.failed}: {self.error[:300]}" if self.failed else "")


def _probe(client, cell, index: int) -> dict:
    client.execute_cell(cell, index)
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    match = re.search(r"STATELAB-PROBE (.*)", text)
    if not match:
        raise AssertionError(f"the probe printed nothing: {cell.outputs}")
    return json.loads(match.group(1))


def _running(pid: int) -> bool:
    """True while ``pid`` runs: a zombie (state Z) has exited and only waits to be reaped by its new parent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _still_running(pids: set[int], grace_s: float = 2.0) -> list[int]:
    """The ``pids`` still running after up to ``grace_s`` (a signal is delivered, not obeyed, at once)."""
    deadline = time.monotonic() + grace_s
    while (alive := sorted(p for p in pids if _running(p))) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def refuses(host: str, port: int) -> bool:
    """True when nothing accepts a TCP connection at host:port any more."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.settimeout(1)
        try:
            s.connect((host if host not in ("0.0.0.0", "::") else "127.0.0.1", port))
        except (ConnectionRefusedError, OSError):
            return True
        return False


def listeners(port: int) -> set[int]:
    """The processes listening on TCP ``port`` (Linux /proc; those of other users may be hidden)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        inodes |= {f[9] for f in map(str.split, rows) if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port}
    return {int(pid) for pid in filter(str.isdigit, os.listdir("/proc") if inodes else ())
            if _statelab_socket_inodes(int(pid)) & inodes}


def ipc_kernel_manager(folder: Path):
    """A kernel manager whose kernel talks over Unix sockets in ``folder``, not TCP ports on 127.0.0.1.

    With TCP, jupyter_client picks free ports, releases them, and the kernel binds them a moment later; a
    notebook's servers starting on free ports in between can take one, and the kernel then dies at start
    ("Address already in use") or hangs in its clean-up while the client blocks. Measured with 8 kernels at
    once on 2 cores: 4 of about 150 kernel starts failed, one more hung for good (benchmarks/class_on_one_machine.py).
    """
    from jupyter_client.manager import AsyncKernelManager

    return AsyncKernelManager(kernel_name="python3", transport="ipc", ip=str(folder / ".kernel-ipc"))


def run_twice(path: Path, workdir: Path) -> NotebookRun:
    """Run All twice in one fresh kernel on a copy of ``path`` in ``workdir``, then stop and shut down."""
    from nbclient import NotebookClient

    name = path.relative_to(ROOT).as_posix()
    shutil.copytree(path.parent, workdir, dirs_exist_ok=True,  # not a developer's own journal: a fresh learner's run
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", ".statelab-evidence"))
    nb = nbformat.read(workdir / path.name, as_version=4)
    n = len(nb.cells)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    nb.cells += [nbformat.v4.new_code_cell(PROBE), nbformat.v4.new_code_cell(STOP_ALL)]
    probe, stop = n, n + 1
    run = NotebookRun(name, workdir=workdir)
    client = NotebookClient(nb, km=ipc_kernel_manager(workdir), timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            shutdown_kernel="graceful", resources={"metadata": {"path": str(workdir)}})
    step = "kernel start"
    start = time.perf_counter()
    process = None
    try:
        with client.setup_kernel(cleanup_kc=True):  # our own kernel manager: shut its kernel down at the end
            # A shutdown request gets half of this before SIGTERM (jupyter_client; JupyterLab's default is 5 s,
            # so 2.5 s). Measured here: 0.2-1.8 s alone, up to 3.1 s with the machine busy; the exit code
            # (0 = exited by itself) is the verdict, shutdown_s is reported.
            client.km.shutdown_wait_time = SHUTDOWN_WAIT_S
            process = client.km.provisioner.process
            run.probes["fresh"] = _probe(client, nb.cells[probe], probe)  # the kernel's own sockets
            run.kernel_start_s = time.perf_counter() - start
            for label in ("run 1", "run 2"):
                step = label
                if label == "run 2":
                    start = time.perf_counter()
                for i in range(n):
                    client.execute_cell(nb.cells[i], i)  # raises CellExecutionError on an error output
                run.seconds.append(time.perf_counter() - start)
                if label == "run 1":
                    client.set_widgets_metadata()  # the widgets the kernel created, as nbclient's execute() saves
                    run.executed = copy.deepcopy(nb)
                    run.executed.cells = run.executed.cells[:n]
                run.probes[label] = _probe(client, nb.cells[probe], probe)
            step = "stop_all"
            client.execute_cell(nb.cells[stop], stop)
            run.probes["stop_all"] = _probe(client, nb.cells[probe], probe)
            step = "before shutdown"
            for i in code:  # the cells again from the top until a server is up: something to stop at shutdown
                client.execute_cell(nb.cells[i], i)
                run.probes["before shutdown"] = _probe(client, nb.cells[probe], probe)
                if run.served("before shutdown"):
                    break
            step = "shutdown"
            shutdown_started = time.perf_counter()
        # leaving setup_kernel asked the kernel to shut down and waited for it
        process.wait(timeout=30)
        run.shutdown_s = time.perf_counter() - shutdown_started
        run.kernel_exit_code = process.returncode
        last = run.probes["before shutdown"]
        if last["children"] is not None:
            family = {last["pid"], *last["children"], *last["keepers"]}  # the keeper must go too
            run.alive_after_exit = _still_running(family)
            run.still_listening = [a for a in run.served("before shutdown")
                                   if not refuses(*a) and listeners(a[1]) & family]
    except Exception as error:  # reported by the tests, per step
        run.failed, run.error = step, f"{type(error).__name__}: {error}"
        if process is not None and process.poll() is None:
            process.kill()
    return run


class NotebookRuns:
    """Runs notebooks on demand, each at most once per session, ``workers`` at a time, in the order asked."""

    def __init__(self, tmp_factory, workers: int = WORKERS, skip: frozenset[str] = frozenset()):
        self._tmp = tmp_factory
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="notebook-runs")
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()
        self.skip = skip  # executed by nbval in this session: not executed again here
        self.started = time.perf_counter()

    def prefetch(self, names: list[str]) -> None:
        with self._lock:
            for name in names:
                if name not in self._futures and name not in self.skip:
                    path = ROOT / name
                    workdir = self._tmp.mktemp(path.stem)
                    self._futures[name] = self._pool.submit(run_twice, path, workdir)

    def wait(self) -> None:
        """Until every notebook asked for so far has run."""
        for future in list(self._futures.values()):
            future.exception()

    def result(self, name: str) -> NotebookRun:
        import pytest

        if name in self.skip:
            pytest.skip("nbval executes this notebook in this run")
        self.prefetch([name])
        return self._futures[name].result()

    def done(self) -> list[NotebookRun]:
        return [f.result() for f in self._futures.values() if f.done()]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def output_kinds(nb: nbformat.NotebookNode) -> set[str]:
    """What a browser must render for this executed notebook: each output's MIME types, and each widget model
    (module and name) the kernel created, from the widget state nbclient saved."""
    kinds: set[str] = set()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                kinds.add(f"stream/{out.name}")
            elif out.output_type == "error":
                kinds.add("error")
            else:
                kinds.update(out.get("data", {}))
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    kinds.update(f"widget {m.get('model_module')}.{m.get('model_name')}" for m in state.values())
    return kinds


def kernel_that_ran(code: str, cwd: Path) -> tuple:
    """A fresh python3 kernel in ``cwd``, with this checkout on its path, that has run ``code`` without error:
    ``(kernel manager, client, what the code printed)``. The caller shuts it down (to test how that goes)."""
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(cwd))
    out: list = []
    reply = kc.execute_interactive(code, timeout=60, output_hook=out.append)
    assert reply["content"]["status"] == "ok", reply["content"]
    return km, kc, "".join(m["content"].get("text", "") for m in out if m["msg_type"] == "stream")
