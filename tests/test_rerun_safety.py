"""Re-run safety: every notebook runs twice in one kernel, and nothing leaks.

A learner re-runs cells and presses "Run all" again without restarting the kernel. For each notebook in
``notebooks/`` this test executes all cells, then all cells again in the same kernel, and asserts:

* no cell raises, either time;
* ``threading.active_count()`` is the same at the end of run 2 as at the end of run 1 (each run's set-up
  cell stops what the previous run started, so nothing accumulates);
* every server, balancer and cache the notebook has running (found through ``statelab.service.registry.live()``, the
  clusters' own servers and balancers, and any other live ``HttpService`` in the kernel) refuses
  connections after ``sl.stop_all()``;
* after the set-up cell runs again, shutting the kernel down stops those servers too: the kernel exits on
  its own (not killed by the manager) and every port refuses afterwards.

Notebooks run on a temporary copy of ``notebooks/`` (a notebook may write files next to itself), two at
a time (see ``WORKERS``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest

from kernels import MEMORY_LIMIT_MB

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MIN_NOTEBOOKS = 10
# Two kernels at once: the notebooks wait on sockets and sleeps as much as they compute, so on two cores
# this takes about 60% of the sequential time (measured: see benchmarks/RESULTS.md and the test's output).
WORKERS = int(os.environ.get("STATELAB_RERUN_WORKERS", "2"))
CELL_TIMEOUT_S = 120

# Runs in the notebook's kernel; prints one JSON line. Werkzeug answers each request on a short-lived
# thread, so it first waits for those to end: they are traffic still draining, not leaks.
PROBE = r'''
def _statelab_probe():
    import gc, json, threading, time
    import statelab.service as srv
    from statelab.service.registry import live
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and any("process_request_thread" in t.name for t in threading.enumerate()):
        time.sleep(0.02)
    found = {}
    owners = live() + [o for o in gc.get_objects() if isinstance(o, srv.HttpService)]
    for owner in owners:
        for x in (owner, *getattr(owner, "servers", ()), getattr(owner, "balancer", None)):
            if (isinstance(x, srv.HttpService) or x in srv.running()) and x.alive:  # running(): gunicorns too
                found[x.url] = f"{type(x).__name__} {x.name}"
    names = sorted(t.name for t in threading.enumerate())
    import re, pathlib  # peak memory: VmHWM (ru_maxrss would carry the parent's size across exec)
    status = pathlib.Path("/proc/self/status")
    hwm = re.search(r"VmHWM:\s+(\d+) kB", status.read_text()) if status.exists() else None
    print("STATELAB-PROBE", json.dumps({"threads": threading.active_count(), "names": names, "live": found,
                                        "peak_kib": int(hwm.group(1)) if hwm else None}))
_statelab_probe()
del _statelab_probe
'''
STOP_ALL = "import statelab as _sl\nprint('STATELAB-STOPPED', _sl.stop_all())"


@dataclass
class Rerun:
    """What happened to one notebook."""

    name: str
    seconds: list[float] = field(default_factory=list)        # run 1, run 2
    probes: list[dict] = field(default_factory=list)          # end of run 1, end of run 2, after stop_all
    stopped_urls: dict[str, str] = field(default_factory=dict)   # live before stop_all
    exit_urls: dict[str, str] = field(default_factory=dict)      # live when the kernel was shut down
    kernel_exit_code: int | None = None
    shutdown_s: float = 0.0


def _probe(client, cell, index: int) -> dict:
    client.execute_cell(cell, index)
    text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    match = re.search(r"STATELAB-PROBE (.*)", text)
    assert match, f"the probe printed nothing: {cell.outputs}"
    return json.loads(match.group(1))


def run_twice(path: Path, workdir: Path) -> Rerun:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    n = len(nb.cells)
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells += [nbformat.v4.new_code_cell(PROBE), nbformat.v4.new_code_cell(STOP_ALL)]
    probe, stop = n, n + 1
    result = Rerun(path.name)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", shutdown_kernel="graceful",
                            resources={"metadata": {"path": str(workdir)}})
    with client.setup_kernel():
        process = client.km.provisioner.process
        for _ in range(2):
            start = time.perf_counter()
            for i in range(n):
                client.execute_cell(nb.cells[i], i)  # raises CellExecutionError on an error output
            result.seconds.append(time.perf_counter() - start)
            result.probes.append(_probe(client, nb.cells[probe], probe))
        result.stopped_urls = result.probes[-1]["live"]
        client.execute_cell(nb.cells[stop], stop)
        result.probes.append(_probe(client, nb.cells[probe], probe))
        client.execute_cell(nb.cells[first_code], first_code)  # the set-up cell again: servers up at shutdown
        result.exit_urls = _probe(client, nb.cells[probe], probe)["live"]
        shutdown_started = time.perf_counter()
    # leaving setup_kernel asked the kernel to shut down and waited for it
    process.wait(timeout=30)
    result.shutdown_s = time.perf_counter() - shutdown_started
    result.kernel_exit_code = process.returncode
    return result


def refuses(url: str) -> bool:
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1", url
    with socket.socket() as s:
        s.settimeout(1)
        try:
            s.connect((parts.hostname, parts.port))
        except ConnectionRefusedError:
            return True
        return False


def statelab_threads(names: list[str]) -> list[str]:
    return [n for n in names if n.startswith("statelab-")]


@pytest.fixture(scope="module")
def reruns(tmp_path_factory) -> dict[str, Rerun]:
    assert len(NOTEBOOKS) >= MIN_NOTEBOOKS, f"expected at least {MIN_NOTEBOOKS} notebooks, found {NOTEBOOKS}"
    results: dict[str, Rerun | BaseException] = {}

    def one(path: Path) -> None:
        workdir = tmp_path_factory.mktemp(path.stem)
        shutil.copytree(ROOT / "notebooks", workdir, dirs_exist_ok=True)
        try:
            results[path.name] = run_twice(workdir / path.name, workdir)
        except BaseException as error:  # reported per notebook by the test below
            results[path.name] = error

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(one, NOTEBOOKS))
    total = time.perf_counter() - start
    print(f"\nre-run safety: {len(NOTEBOOKS)} notebooks, each run twice in one kernel, {WORKERS} at a time, "
          f"in {total:.0f} s")
    for name, r in sorted(results.items()):
        if isinstance(r, Rerun):
            print(f"  {name:32s} run 1 {r.seconds[0]:5.1f} s, run 2 {r.seconds[1]:5.1f} s, threads "
                  f"{r.probes[0]['threads']} -> {r.probes[1]['threads']}, {len(r.stopped_urls)} services stopped, "
                  f"kernel shut down in {r.shutdown_s:.1f} s")
        else:
            print(f"  {name:32s} FAILED: {type(r).__name__}: {str(r)[:300]}")
    return results


def test_found_the_notebooks(reruns):
    assert len(reruns) == len(NOTEBOOKS) >= MIN_NOTEBOOKS


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS])
def test_notebook_runs_twice_in_one_kernel_without_leaks(reruns, name):
    r = reruns[name]
    if isinstance(r, BaseException):
        raise r
    end1, end2, after_stop = r.probes
    if end1["peak_kib"] is not None:  # one Run all in a fresh kernel stays within the memory budget
        assert end1["peak_kib"] / 1024 < MEMORY_LIMIT_MB, f"peak kernel memory {end1['peak_kib'] / 1024:.0f} MiB"
    # re-running everything leaves exactly what one run leaves
    grown = sorted(set(end2["names"]) - set(end1["names"]))
    assert end2["threads"] <= end1["threads"], (
        f"threads grew from {end1['threads']} to {end2['threads']} on the second run; new: {grown}")
    assert len(end2["live"]) == len(end1["live"]), (end1["live"], end2["live"])
    for url in set(end1["live"]) - set(end2["live"]):  # what run 1 started and run 2 replaced is gone
        assert refuses(url), f"{end1['live'][url]} from the first run still listens at {url}"
    # sl.stop_all() stops everything the notebook started
    assert r.stopped_urls, "the notebook left no server running after Run all (the dashboard needs one)"
    assert after_stop["live"] == {}, after_stop["live"]
    assert statelab_threads(after_stop["names"]) == [], after_stop["names"]
    left = [url for url in r.stopped_urls if not refuses(url)]
    assert not left, f"still listening after stop_all(): {[r.stopped_urls[u] for u in left]}"
    # shutting the kernel down stops what is running: it exits by itself, and nothing listens afterwards
    assert r.exit_urls, "the set-up cell started nothing"
    assert r.kernel_exit_code == 0, f"the kernel did not exit cleanly (exit code {r.kernel_exit_code})"
    left = [url for url in r.exit_urls if not refuses(url)]
    assert not left, f"still listening after the kernel shut down: {[r.exit_urls[u] for u in left]}"
