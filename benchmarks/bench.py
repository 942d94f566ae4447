"""Benchmarks: statelab's costs and the lessons' stability, each measured side by side in one run.

Run ``python benchmarks/bench.py`` (a few minutes) or ``python benchmarks/bench.py --quick`` (well under
a minute: fewer repetitions, no notebooks). Every comparison is measured in the same run, alternating the two
sides, and printed as a ratio, so a busy machine slows both sides alike:

* server start and kill latency: a statelab :class:`~statelab.shop.server.Server` vs a bare werkzeug
  ``make_server`` + ``shutdown``;
* request overhead: p50 of ``GET /health`` on a statelab server vs a bare WSGI app returning the same JSON
  on the same kind of werkzeug server (and through a balancer, for the cost of the extra hop);
* the load generator (:func:`statelab.load.run`) vs ``wrk`` on the same server;
* each notebook's run time and peak kernel memory (a fresh kernel each, run with nbclient);
* each table row's verdict over repeated ``run(quick=True)`` calls.

``--out FILE`` also writes the results as markdown, with a description of the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from werkzeug.serving import make_server

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a clone: measure the statelab next door, installed or not
    sys.path.insert(0, str(ROOT))

from statelab import load  # noqa: E402
from statelab.kernel import use_private_jupyter_home  # noqa: E402
from statelab.load import WRK, LoadComparison, load_vs_wrk, wrk_available  # noqa: E402
from statelab.rawhttp import build_request, wire_exchange  # noqa: E402
from statelab.service import HOST, POLL_INTERVAL, HttpService  # noqa: E402
from statelab.shop.server import Server  # noqa: E402
from statelab.topology.cluster import Cluster  # noqa: E402

NOTEBOOKS = ROOT / "notebooks"
PACKAGES = ("flask", "werkzeug", "pyjwt", "requests", "ipywidgets", "ipykernel", "nbclient", "jupyterlab",
            "matplotlib")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


# --------------------------------------------------------------------------- the machine

def machine() -> dict[str, str]:
    """What this ran on: the numbers below mean little without it."""
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown"
    memory = "unknown"
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    except (OSError, AttributeError):
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    wrk = "not installed"
    if os.path.exists(WRK):
        out = subprocess.run([WRK, "-v"], capture_output=True, text=True).stdout + ""
        wrk = (out.splitlines() or ["?"])[0].split(" Copyright")[0]
    commit = ""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": f"{os.cpu_count()} logical, {usable} usable by this process",
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": ", ".join(versions),
        "wrk": wrk,
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "commit": commit or "unknown",
    }


# --------------------------------------------------------------------------- a bare werkzeug server

def bare_health_app(name: str = "bare") -> Callable[..., Any]:
    """A plain WSGI app answering every request with /health's JSON shape: the floor statelab is compared to."""
    served = [0]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        served[0] += 1
        body = json.dumps({"server": name, "mode": "bare", "sessions": 0, "requests": served[0]}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                  ("X-Served-By", name)])
        return [body]

    return app


class BareServer:
    """werkzeug's threaded server in a daemon thread, nothing else: ``make_server`` + ``serve_forever``."""

    def __init__(self, poll_interval: float = POLL_INTERVAL) -> None:
        self.httpd = make_server(HOST, 0, bare_health_app(), threaded=True)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": poll_interval},
                                       name="bench-bare", daemon=True)
        self.thread.start()
        self.url = f"http://{HOST}:{self.httpd.server_port}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=2)


class BareService(HttpService):
    """The bare WSGI app on statelab's own HTTP service: the same server as a statelab Server, minus Flask.

    ``load.run`` sends load only to this interpreter's statelab services, so the request-overhead
    comparison runs the bare app here; server start and kill compare against :class:`BareServer`.
    """

    def _build_app(self) -> Any:
        return bare_health_app(self.name)


def _answers(url: str) -> bool:
    """One GET /health; raises unless it answers 200 (a benchmark of a broken server means nothing)."""
    port = int(url.rsplit(":", 1)[1])
    status = wire_exchange(url, build_request("GET", HOST, port, "/health"), timeout=5).status
    if status != 200:
        raise RuntimeError(f"{url}/health answered {status}")
    return True


# --------------------------------------------------------------------------- measurements

@dataclass
class Comparison:
    """One side-by-side measurement: statelab's figure, the reference's, and their ratio."""

    what: str
    unit: str
    ours_label: str
    ours: float
    ref_label: str
    ref: float
    samples: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.ref if self.ref else float("nan")


def start_and_kill(reps: int) -> list[Comparison]:
    """Start (until the first answer) and kill latency, statelab vs bare werkzeug, alternating.

    Both servers notice a shutdown at their next poll (every ``POLL_INTERVAL``), so a stop's latency depends
    on when in that cycle it comes. Each pair is stopped at the same delay after its first answer, the
    delays spread evenly over one poll interval, so both sides sample the cycle alike.
    """
    times: dict[str, list[float]] = {"ours start": [], "ours kill": [], "bare start": [], "bare stop": []}

    def start_then_stop(side: str, start: Callable[[], Any], stop: Callable[[Any], Any], delay: float) -> None:
        t0 = time.perf_counter()
        server = start()
        _answers(server.url)
        times[f"{side} start"].append((time.perf_counter() - t0) * 1000)
        time.sleep(delay)
        t0 = time.perf_counter()
        stop(server)
        times[f"{side} {'kill' if side == 'ours' else 'stop'}"].append((time.perf_counter() - t0) * 1000)

    delays = [(i + 0.5) / reps * POLL_INTERVAL for i in range(reps)]
    random.Random(0).shuffle(delays)
    for delay in delays:
        start_then_stop("ours", lambda: Server("stateful").start(), lambda s: s.kill(), delay)
        start_then_stop("bare", BareServer, lambda s: s.stop(), delay)
    ours_start, ours_kill, bare_start, bare_stop = (times[k] for k in ("ours start", "ours kill", "bare start",
                                                                        "bare stop"))
    note = f"median of {reps}, alternating; each stop at the same delay after the first answer, spread over a poll"
    return [
        Comparison("server start, until it answers GET /health", "ms", "statelab Server(...).start()",
                   median(ours_start), "bare make_server + thread", median(bare_start), note),
        Comparison("server kill (stop listening, cut connections)", "ms", "statelab server.kill()",
                   median(ours_kill), f"bare shutdown() + server_close(), poll {POLL_INTERVAL} s",
                   median(bare_stop), note),
    ]


def default_poll_shutdown(reps: int) -> float:
    """werkzeug's shutdown with serve_forever's default poll interval (0.5 s), for context."""
    times = []
    for i in range(reps):  # stops spread over one 0.5 s cycle, as in start_and_kill
        bare = BareServer(poll_interval=0.5)
        _answers(bare.url)
        time.sleep((i + 0.5) / reps * 0.5)
        t0 = time.perf_counter()
        bare.stop()
        times.append((time.perf_counter() - t0) * 1000)
    return median(times)


def request_overhead(requests_per_block: int, blocks: int) -> list[Comparison]:
    """p50 latency of GET /health, one request at a time from a separate process, blocks alternating."""
    lat: dict[str, list[float]] = {"bare": [], "statelab": [], "balancer": []}
    bare = BareService("bare").start()
    server = Server("stateful").start()
    cluster = Cluster(1, mode="stateful")
    targets = {"bare": bare.url, "statelab": server.url, "balancer": cluster.url}
    try:
        for _ in range(blocks):
            for key, url in targets.items():
                res = load.run(url, duration=60, concurrency=1, max_requests=requests_per_block)
                if res.errors:
                    raise RuntimeError(f"{key}: {res.errors} errors in the latency run: {res.statuses}")
                lat[key].extend(res.latencies_ms)
    finally:
        bare.stop()
        server.stop()
        cluster.stop()
    p50 = {k: load.percentile(v, 50) for k, v in lat.items()}
    note = f"{len(lat['bare'])} requests each, {blocks} alternating blocks, one at a time, client in a child process"
    return [
        Comparison("GET /health p50 latency", "ms", "statelab server (Flask app)", p50["statelab"],
                   "bare WSGI app, same JSON, same statelab HTTP service", p50["bare"], note),
        Comparison("GET /health p50 latency, through the balancer", "ms", "balancer -> statelab server",
                   p50["balancer"], "statelab server directly", p50["statelab"], note),
    ]


# --------------------------------------------------------------------------- notebooks

@dataclass
class NotebookRun:
    name: str
    kernel_start_s: float = 0.0
    cells_s: float = 0.0
    peak_mib: float = 0.0
    error: str = ""

    @property
    def total_s(self) -> float:
        return self.kernel_start_s + self.cells_s


def jupyter_sandbox() -> None:
    """Kernels started here read and write Jupyter settings in a temp folder, never the user's own."""
    use_private_jupyter_home(tempfile.mkdtemp(prefix="statelab-bench-jupyter-"))


def _vm_hwm_mib(pid: int) -> float:
    """The peak resident memory (VmHWM) of process ``pid``, in MiB."""
    match = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def _describe_cell_error(text: str) -> str:
    """One line for a failed cell: the self-check's false checks when it names them, else the error line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text).strip()
    false = re.findall(r"'([^']+)': False", text)
    line = f"self-check failed: false: {'; '.join(false)}" if false else text.splitlines()[-1]
    return line.replace("|", "/")[:300]


def run_notebook(path: Path, timeout: float = 120) -> NotebookRun:
    """Run ``path`` top to bottom in a fresh kernel on a temporary copy of its folder."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    result = NotebookRun(path.name)
    with tempfile.TemporaryDirectory(prefix="statelab-bench-") as tmp:
        workdir = Path(tmp) / "notebooks"
        shutil.copytree(path.parent, workdir)
        nb = nbformat.read(workdir / path.name, as_version=4)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", shutdown_kernel="immediate",
                                resources={"metadata": {"path": str(workdir)}})
        t0 = time.perf_counter()
        with client.setup_kernel(stderr=subprocess.DEVNULL):  # not the kernel's start-up warnings
            t1 = time.perf_counter()
            result.kernel_start_s = t1 - t0
            try:
                for i, cell in enumerate(nb.cells):
                    client.execute_cell(cell, i)
            except CellExecutionError as error:
                result.error = _describe_cell_error(str(error))
            except Exception as error:  # a timeout or a dead kernel: report it, go on with the next notebook
                result.error = f"{type(error).__name__}: {error}"[:200]
            result.cells_s = time.perf_counter() - t1
            try:
                result.peak_mib = _vm_hwm_mib(client.km.provisioner.pid)
            except (OSError, AttributeError, TypeError):
                result.peak_mib = float("nan")
    return result


def notebook_runs(paths: list[Path]) -> list[NotebookRun]:
    jupyter_sandbox()
    runs = []
    for path in paths:
        log(f"  notebook {path.name} ...")
        runs.append(run_notebook(path))
        r = runs[-1]
        log(f"    {r.total_s:.1f} s, peak {r.peak_mib:.0f} MiB {r.error}")
    return runs


# --------------------------------------------------------------------------- verdict stability

@dataclass
class Stability:
    row: str
    verdicts: Counter = field(default_factory=Counter)
    seconds: list[float] = field(default_factory=list)
    all_checks: int = 0                      # runs in which every named check held (what self-checks assert)
    failed_checks: Counter = field(default_factory=Counter)

    @property
    def stable(self) -> bool:
        return len(self.verdicts) == 1 and not any(v.startswith("error") for v in self.verdicts)


def verdict_stability(runs: int) -> list[Stability]:
    """Each table row's experiment, ``run(quick=True)`` ``runs`` times; the verdicts it reached."""
    from statelab.table import ROWS

    out = []
    for row in ROWS:
        s = Stability(row.key)
        for _ in range(runs):
            t0 = time.perf_counter()
            try:
                ev = row.experiment.run(quick=True)
                halves = {**ev.verdicts, **ev.benefits}
                s.verdicts["; ".join(f"{k}: {v}" for k, v in halves.items()) or "no verdict"] += 1
                s.all_checks += all(ev.checks.values())
                s.failed_checks.update(name for name, ok in ev.checks.items() if not ok)
            except Exception as error:  # a crash is a result too: it shows up in the table
                s.verdicts[f"error: {type(error).__name__}"] += 1
            s.seconds.append(time.perf_counter() - t0)
        log(f"  {row.key}: {dict(s.verdicts)}, every check held in {s.all_checks} ({median(s.seconds):.1f} s each)")
        out.append(s)
    return out


# --------------------------------------------------------------------------- the report

@dataclass
class Results:
    machine: dict[str, str]
    quick: bool
    comparisons: list[Comparison] = field(default_factory=list)
    default_poll_ms: float | None = None
    load: LoadComparison | None = None
    load_note: str = ""
    notebooks: list[NotebookRun] = field(default_factory=list)
    stability: list[Stability] = field(default_factory=list)
    stability_runs: int = 0
    seconds: float = 0.0
    load_average_end: str = ""


def _f(x: float, digits: int = 2) -> str:
    return "n/a" if x != x else f"{x:.{digits}f}"


def markdown(r: Results) -> str:
    m = r.machine
    lines = [
        "# statelab benchmarks",
        "",
        f"Measured by `python benchmarks/bench.py{' --quick' if r.quick else ''}` in one run of {r.seconds:.0f} s "
        "(see [README.md](README.md) for what each",
        "figure is compared with). Each comparison alternates its two sides in the same run, so a busy machine",
        "slows both alike: the ratio is the figure to read. Absolute numbers depend on the machine below and on",
        "what else it was doing (see the load average).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in m.items()]
    lines += [f"| load average at end | {r.load_average_end} |", ""]

    lines += ["## statelab vs bare werkzeug", "",
              "| measurement | statelab | value | reference | value | ratio |", "|---|---|---|---|---|---|"]
    for c in r.comparisons:
        lines.append(f"| {c.what} ({c.unit}) | {c.ours_label} | {_f(c.ours)} | {c.ref_label} | {_f(c.ref)} "
                     f"| {_f(c.ratio)}x |")
    lines.append("")
    lines += [f"- {c.what}: {c.samples}." for c in r.comparisons if c.samples]
    if r.default_poll_ms is not None:
        lines.append(f"- For context: a bare werkzeug server with `serve_forever()`'s default poll interval "
                     f"(0.5 s) takes {_f(r.default_poll_ms, 0)} ms to shut down; statelab polls every "
                     f"{POLL_INTERVAL} s so that `kill()` is quick.")
    lines.append("")

    lines += ["## Load generator vs wrk", ""]
    if r.load is None:
        lines += [r.load_note or "wrk is not installed: not measured.", ""]
    else:
        lo = r.load
        lines += [
            f"The same in-process statelab server (`GET /health`), {lo.concurrency} concurrent connections, "
            f"{len(lo.wrk)} alternating trials of {lo.seconds:g} s each, in requests per second. The ratio is the "
            "median of the trial-by-trial ratios.",
            "",
            "| generator | req/s (median) | trials | ratio to wrk |",
            "|---|---|---|---|",
            f"| wrk (`-t1 -c{lo.concurrency}`) | {median(lo.wrk):.0f} | {', '.join(f'{x:.0f}' for x in lo.wrk)} "
            f"| 1.00x |",
            f"| `statelab.load.run` (default: child process) | {median(lo.child):.0f} | "
            f"{', '.join(f'{x:.0f}' for x in lo.child)} | {lo.child_ratio:.2f}x |",
            f"| `statelab.load.run(separate_process=False)` (threads in the servers' process) | "
            f"{median(lo.threads):.0f} | {', '.join(f'{x:.0f}' for x in lo.threads)} | {lo.threads_ratio:.2f}x |",
            "",
            f"Failed requests during statelab's runs: {lo.errors}.",
            "",
        ]

    lines += ["## Notebooks", ""]
    if not r.notebooks:
        lines += ["Not run with `--quick`.", ""]
    else:
        lines += ["Each notebook top to bottom in a fresh kernel (nbclient), one at a time. Peak memory is the "
                  "kernel process's VmHWM from `/proc/<pid>/status`.", "",
                  "| notebook | kernel start (s) | cells (s) | total (s) | peak kernel memory (MiB) | result |",
                  "|---|---|---|---|---|---|"]
        for n in r.notebooks:
            lines.append(f"| {n.name} | {n.kernel_start_s:.1f} | {n.cells_s:.1f} | {n.total_s:.1f} | "
                         f"{_f(n.peak_mib, 0)} | {'error: ' + n.error if n.error else 'ok'} |")
        totals = [n.total_s for n in r.notebooks]
        peaks = [n.peak_mib for n in r.notebooks]
        lines += ["", f"Slowest notebook {max(totals):.1f} s (median {median(totals):.1f} s); largest peak "
                      f"{max(peaks):.0f} MiB. Budget: under 30 s and 200 MiB each.", ""]

    lines += ["## Verdict stability", ""]
    if r.stability:
        lines += [f"Each row's experiment, `run(quick=True)` {r.stability_runs} times in a row in one process.", "",
                  "| row | verdicts | stable | runs with every check true | median run (s) |",
                  "|---|---|---|---|---|"]
        for s in r.stability:
            verdicts = ", ".join(f"{v}: {n}" for v, n in s.verdicts.most_common())
            lines.append(f"| {s.row} | {verdicts} | {'yes' if s.stable else 'NO'} | {s.all_checks} of "
                         f"{r.stability_runs} | {median(s.seconds):.1f} |")
        stable = sum(s.stable for s in r.stability)
        lines += ["", f"{stable} of {len(r.stability)} rows reached the same verdict every time."]
        lines += [f"- {s.row}: {name} was false in {n} of {r.stability_runs} runs."
                  for s in r.stability for name, n in s.failed_checks.most_common()]
        lines.append("")
    return "\n".join(lines)


def run_all(quick: bool = False, notebooks: bool | None = None) -> Results:
    started = time.perf_counter()
    results = Results(machine(), quick)
    log("server start and kill ...")
    results.comparisons += start_and_kill(5 if quick else 20)
    if not quick:
        results.default_poll_ms = default_poll_shutdown(4)
    log("request overhead ...")
    results.comparisons += request_overhead(100 if quick else 200, 2 if quick else 5)
    log("load generator vs wrk ...")
    if wrk_available():
        with Server("stateless") as server:
            server.start()
            results.load = load_vs_wrk(server.url, seconds=1.0 if quick else 2.0, trials=3)
    else:
        results.load_note = f"wrk not found at {WRK}: not measured."
    if notebooks if notebooks is not None else not quick:
        log("notebooks ...")
        results.notebooks = notebook_runs(sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")))
    results.stability_runs = 2 if quick else 10
    log(f"verdict stability ({results.stability_runs} runs per row) ...")
    results.stability = verdict_stability(results.stability_runs)
    results.seconds = time.perf_counter() - started
    results.load_average_end = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/bench.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and no notebooks (well under a minute)")
    parser.add_argument("--out", type=Path, help="also write the results as markdown to this file")
    args = parser.parse_args(argv)
    text = markdown(run_all(quick=args.quick))
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
