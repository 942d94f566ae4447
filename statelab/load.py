"""Load generation and latency statistics, bounded in count and time, loopback only.

``run()`` drives ``concurrency`` worker threads, each with plain ``http.client`` (lean: the
servers share this interpreter, so every microsecond the client spends is one the server
cannot). It never raises for failed requests; it counts them.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


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

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies_ms) if self.latencies_ms else 0.0

    def __repr__(self) -> str:
        return (f"<LoadResult {self.requests} requests in {self.seconds:.2f} s = {self.rps:.0f} req/s, "
                f"p50 {self.p50_ms:.2f} ms, p95 {self.p95_ms:.2f} ms, errors {self.errors}>")


def run(url: str, duration: float = 4.0, concurrency: int = 8, path: str = "/health", *,
        method: str = "GET", json: Any = None, headers: dict[str, str] | None = None,
        max_requests: int | None = None) -> LoadResult:
    """Send requests to ``url + path`` from ``concurrency`` threads for ``duration`` seconds.

    Stops at ``max_requests`` if given. A 4xx/5xx answer or a failed connection counts as an
    error; every answer's status and ``X-Served-By`` are tallied.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    body = None if json is None else jsonlib.dumps(json).encode()
    send_headers = {"Content-Type": "application/json"} if body is not None else {}
    send_headers.update(headers or {})
    result = LoadResult()
    lock = threading.Lock()
    budget = [max_requests if max_requests is not None else float("inf")]
    deadline = time.perf_counter() + duration

    def take() -> bool:
        with lock:
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            return True

    def worker() -> None:
        latencies: list[float] = []
        statuses: Counter[Any] = Counter()
        servers: Counter[str] = Counter()
        while time.perf_counter() < deadline and take():
            start = time.perf_counter()
            conn = http.client.HTTPConnection(host, port, timeout=10)
            try:
                conn.request(method, path, body=body, headers=send_headers)
                response = conn.getresponse()
                response.read()
                latencies.append((time.perf_counter() - start) * 1000)
                statuses[response.status] += 1
                servers[response.getheader("X-Served-By") or "?"] += 1
            except (OSError, http.client.HTTPException):
                statuses["failed"] += 1
            finally:
                conn.close()
        with lock:
            result.latencies_ms.extend(latencies)
            result.statuses.update(statuses)
            result.by_server.update(servers)

    began = time.perf_counter()
    threads = [threading.Thread(target=worker, name=f"statelab-load-{i}", daemon=True)
               for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result.seconds = time.perf_counter() - began
    result.requests = sum(result.statuses.values())
    result.errors = sum(n for s, n in result.statuses.items() if s == "failed" or s >= 400)
    return result
