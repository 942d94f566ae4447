"""Load generation and latency statistics, bounded in count and time, loopback only.

``run()`` drives ``concurrency`` worker threads from a small child process, each sending a
request built once over a raw socket and reading just the status line, the headers and the
body (as wrk does). Lean on purpose: the servers live in the notebook's interpreter, and every
microsecond the client spends there is one the server cannot. It never raises for failed
requests; it counts them.
"""

from __future__ import annotations

import json as jsonlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

try:
    from .rawhttp import build_request, wire_exchange
except ImportError:  # run as the child process of _in_child: a script, next to rawhttp.py, stdlib only
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from rawhttp import build_request, wire_exchange


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class LoadResult:
    """What a load run measured. Latencies are in milliseconds, for answered requests."""

    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[Any] = field(default_factory=Counter)
    by_server: Counter[str] = field(default_factory=Counter)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 50)

    @property
    def p95_ms(self) -> float:
        return percentile(self.latencies_ms, 95)

    def __repr__(self) -> str:
        return (f"<LoadResult {self.requests} requests in {self.seconds:.2f} s = {self.rps:.0f} req/s, "
                f"p50 {self.p50_ms:.2f} ms, p95 {self.p95_ms:.2f} ms, errors {self.errors}>")


def _drive(host: str, port: int, method: str, path: str, body: Any, headers: dict[str, str],
           duration: float, concurrency: int, max_requests: int | None) -> dict[str, Any]:
    """Send the requests from ``concurrency`` threads; return plain data (JSON-able).

    The request is built once (:func:`~statelab.rawhttp.build_request`) and sent as it is: the
    client does no work per request. Each answer is read to its ``Content-Length``, as wrk does.
    """
    lock = threading.Lock()
    budget = [max_requests if max_requests is not None else float("inf")]
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    servers: Counter[str] = Counter()
    deadline = time.perf_counter() + duration

    def take() -> bool:
        with lock:
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            return True

    raw = build_request(method, host, port, path, headers, body)

    def worker() -> None:
        mine: list[float] = []
        my_statuses: Counter[str] = Counter()
        my_servers: Counter[str] = Counter()
        while time.perf_counter() < deadline and take():
            start = time.perf_counter()
            try:
                answer = wire_exchange((host, port), raw)
            except (OSError, ValueError):
                my_statuses["failed"] += 1
                continue
            mine.append((time.perf_counter() - start) * 1000)
            my_statuses[str(answer.status)] += 1
            my_servers[answer.headers.get("X-Served-By", "?")] += 1
        with lock:
            latencies.extend(mine)
            statuses.update(my_statuses)
            servers.update(my_servers)

    began = time.perf_counter()
    threads = [threading.Thread(target=worker, name=f"statelab-load-{i}", daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"seconds": time.perf_counter() - began, "latencies_ms": latencies,
            "statuses": dict(statuses), "by_server": dict(servers)}


def run(url: Any, duration: float = 4.0, concurrency: int = 8, path: str = "/health", *,
        method: str = "GET", json: Any = None, headers: dict[str, str] | None = None,
        max_requests: int | None = None, separate_process: bool = True) -> LoadResult:
    """Send requests to ``url + path`` from ``concurrency`` threads for ``duration`` seconds.

    ``url`` is one of the servers this interpreter runs (``sl.serve``, a ``Cluster``, a
    ``LoadBalancer`` or ``SharedCache``), or its url: load goes nowhere else, since on a shared
    machine another port may be another learner's. Stops at ``max_requests`` if given. A 4xx/5xx
    answer or a failed connection counts as an error; every answer's status and ``X-Served-By``
    are tallied.

    With ``separate_process`` (the default) the client threads run in a small child Python
    process, as a real load generator would: the servers live in *this* process, and a
    client sharing their interpreter would steal the time it is trying to measure.
    """
    host, port = own_target(url)
    if duration <= 0 or duration > 120 or not 1 <= concurrency <= 256:
        raise ValueError("duration must be in (0, 120] seconds and concurrency from 1 to 256")
    job = {"host": host, "port": port, "method": method, "path": path,
           "body": json, "headers": dict(headers or {}),
           "duration": duration, "concurrency": concurrency, "max_requests": max_requests}
    data = _in_child(job) if separate_process else _drive(**job)
    result = LoadResult(seconds=data["seconds"], latencies_ms=data["latencies_ms"],
                        by_server=Counter(data["by_server"]))
    for status, n in data["statuses"].items():
        result.statuses[int(status) if status.isdigit() else status] += n
    result.requests = sum(result.statuses.values())
    result.errors = sum(n for s, n in result.statuses.items() if s == "failed" or s >= 400)
    return result


def own_target(url: Any) -> tuple[str, int]:
    """(host, port) of ``url`` (a url, or anything with a ``url``) when it is one of this interpreter's
    running servers, balancers or caches; else a ValueError that says why not."""
    from .service import HOST, running  # here, not at the top: the child process has no statelab package

    url = getattr(url, "url", url)
    parts = urlsplit(url if isinstance(url, str) else "")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or parts.hostname not in (HOST, "localhost") or not port:
        raise ValueError(f"statelab sends load only to its own servers on this machine "
                         f"(http://{HOST}:PORT), not to {url!r}")
    own = sorted(service.url for service in running())
    if f"http://{HOST}:{port}" not in own:
        raise ValueError(
            f"{url} is not one of the servers this notebook runs, so load.run will not send it load: on a "
            f"shared machine that port may be another learner's. Running here: {', '.join(own) or 'none'} "
            f"(start one with sl.serve(...) or sl.Cluster(...), or restart it if it was stopped).")
    return HOST, port


def _in_child(job: dict[str, Any]) -> dict[str, Any]:
    """Run :func:`_drive` in a child interpreter (this file as a script: stdlib only, fast to start)."""
    proc = subprocess.run([sys.executable, "-I", __file__], input=jsonlib.dumps(job), capture_output=True,
                          text=True, timeout=job["duration"] + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed: {proc.stderr.strip()[-500:]}")
    return jsonlib.loads(proc.stdout)


if __name__ == "__main__":  # the child process of _in_child
    print(jsonlib.dumps(_drive(**jsonlib.loads(sys.stdin.read()))))


# --------------------------------------------------------------------------- honest against wrk

#: wrk, a load generator written in C: the yardstick :func:`load_vs_wrk` holds ``run`` against (tests and benchmarks)
WRK = shutil.which("wrk") or "/usr/bin/wrk"


def wrk_available() -> bool:
    return os.path.exists(WRK) and os.access(WRK, os.X_OK)


def wrk_rps(url: str, seconds: float, connections: int = 8, threads: int = 1, path: str = "/health") -> float:
    """Requests per second ``wrk`` reaches against ``url + path`` (loopback only)."""
    own_target(url)  # loopback, and a server this interpreter runs: wrk is never pointed anywhere else
    out = subprocess.run([WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", url + path],
                         capture_output=True, text=True, timeout=seconds + 30)
    match = re.search(r"Requests/sec:\s*([\d.]+)", out.stdout)
    if out.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed: {out.stdout[-300:]} {out.stderr[-300:]}")
    return float(match.group(1))


@dataclass
class LoadComparison:
    """Requests per second of wrk and of statelab.load.run (child process, and in-process threads).

    Trial ``i`` of each generator ran back to back, so the ratios are taken trial by trial and their median
    reported: a burst of load from something else on the machine then skews one ratio, not the result.
    """

    wrk: list[float] = field(default_factory=list)
    child: list[float] = field(default_factory=list)
    threads: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    concurrency: int = 8

    @property
    def child_ratio(self) -> float:
        return statistics.median(c / w for c, w in zip(self.child, self.wrk, strict=True))

    @property
    def threads_ratio(self) -> float:
        return statistics.median(t / w for t, w in zip(self.threads, self.wrk, strict=True))


def load_vs_wrk(url: str, seconds: float = 2.0, trials: int = 3, concurrency: int = 8) -> LoadComparison:
    """Alternate wrk, ``load.run`` (separate process, the default) and ``load.run`` in-process threads.

    Odd trials run the three in reverse order, so neither side always goes first.
    """
    result = LoadComparison(seconds=seconds, concurrency=concurrency)
    for trial in range(trials):
        rps: dict[str, float] = {}
        order = ["wrk", "child", "threads"]
        for kind in order if trial % 2 == 0 else order[::-1]:
            if kind == "wrk":
                rps[kind] = wrk_rps(url, seconds, connections=concurrency)
            else:
                res = run(url, duration=seconds, concurrency=concurrency, separate_process=kind == "child")
                rps[kind] = res.rps
                result.errors += res.errors
        result.wrk.append(rps["wrk"])
        result.child.append(rps["child"])
        result.threads.append(rps["threads"])
    return result
