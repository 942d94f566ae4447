"""Notebook 13's measurements: what pre-fork workers do to per-process state, what a shared store
costs and survives, and throughput against worker processes.

Each ``measure_*`` function starts what it needs, measures, stops it, and returns plain numbers;
the notebook renders its sentences from them and its self-check asserts them.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import load
from ..client import Client
from ..shop.sessions import MemoryStore, SqliteStore
from . import usl
from .gunicorn import Gunicorn
from .process import remove_folder, temporary_folder
from .redis import RedisServer, RedisStore


def cores() -> int:
    """CPU cores this process may run on (what a container or ``taskset`` allows, not what the machine has)."""
    return len(os.sched_getaffinity(0))


@dataclass
class Share:
    """How many of a crowd's requests found their login (200) on a server: counted once, by status."""

    statuses: Counter[Any] = field(default_factory=Counter)
    workers_seen: int = 0

    @property
    def found(self) -> int:
        return self.statuses[200]

    @property
    def asked(self) -> int:
        return sum(self.statuses.values())

    @property
    def share(self) -> float:
        return self.found / self.asked if self.asked else 0.0

    def __repr__(self) -> str:  # a sentence with rounded numbers, not the dataclass's fields (issue 20)
        return (f"<{self.share:.0%} found their login ({self.found} of {self.asked}; answers "
                f"{_statuses(self.statuses)}), {self.workers_seen} worker(s) seen>")


def _statuses(counts: Counter[Any]) -> str:
    """``{200: 3, 503: 9}`` as "200 ×3, 503 ×9"."""
    return ", ".join(f"{status} \u00d7{n}" for status, n in sorted(counts.items(), key=str)) or "none"


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share:.0%}"


def found_share(url: str, users: int = 8, requests: int = 8, concurrency: int = 4) -> Share:
    """``users`` log in at ``url``, then each asks for its cart ``requests`` times, ``concurrency`` users at a time."""
    clients = [Client(url) for _ in range(users)]
    try:
        for i, c in enumerate(clients):
            c.login(f"user{i}")

        def shop(c: Client) -> list[Any]:
            return [c.cart() for _ in range(requests)]

        with ThreadPoolExecutor(concurrency) as pool:
            answers = [ex for batch in pool.map(shop, clients) for ex in batch]
    finally:
        for c in clients:
            c.close()
    return Share(Counter(ex.status or "failed" for ex in answers),
                 workers_seen=len({ex.served_by for ex in answers if ex.served_by}))


MODES = ("stateful", "stateless", "cookie")

#: name -> (which deployment, mode): "per-worker" keeps state and key in each worker, "shared" shares both.
DESIGNS = {
    "sessions in each worker's memory": ("per-worker", "stateful"),
    "token, key made per worker": ("per-worker", "stateless"),
    "signed cookie, key made per worker": ("per-worker", "cookie"),
    "sessions in one Redis": ("shared", "stateful"),
    "token, one key from the environment": ("shared", "stateless"),
    "signed cookie, one key from the environment": ("shared", "cookie"),
}


def deployments(redis: RedisServer, workers: int = 2) -> dict[str, Gunicorn]:
    """Two gunicorns, each serving all three modes: one keeps state and key per worker, one shares both."""
    both = {"per-worker": Gunicorn(workers, MODES, store="memory", key="per-worker", wait=False),
            "shared": Gunicorn(workers, MODES, store=redis, key="shared", wait=False)}
    for server in both.values():  # started together, so the two boots overlap
        server.wait()
    return both


def measure_shares(servers: dict[str, Gunicorn], users: int = 8, requests: int = 8) -> dict[str, Share]:
    """For each of :data:`DESIGNS`: the share of a crowd's requests that found their login."""
    return {name: found_share(servers[where].url_for(mode), users, requests) for name, (where, mode) in DESIGNS.items()}


@dataclass(repr=False)
class Crash:
    """What one deployment's users found: before and after every worker crashed, and (sessions in the store)
    while the store was down and after it came back empty. Shares of requests that found their session."""

    found_before: float
    found_after_worker_crash: float
    during_store_outage: Counter[Any] = field(default_factory=Counter)
    found_after_store_back: float | None = None

    def __repr__(self) -> str:
        text = (f"found their session: {self.found_before:.0%} before, "
                f"{self.found_after_worker_crash:.0%} after every worker crashed")
        if self.during_store_outage:
            answers = ", ".join(f"{n} x {status}" for status, n in sorted(self.during_store_outage.items(), key=str))
            text += f"; while the store was down: {answers}"
        if self.found_after_store_back is not None:
            text += f"; after it came back empty: {self.found_after_store_back:.0%}"
        return text


def measure_crashes(servers: dict[str, Gunicorn], redis: RedisServer, users: int = 6) -> dict[str, Crash]:
    """Every worker crashes once (sessions in memory vs in Redis); then Redis itself crashes and comes back empty."""
    out = {}
    for where, server in servers.items():
        clients = [Client(server.url_for("stateful")) for _ in range(users)]
        try:
            for i, c in enumerate(clients):
                c.login(f"crash{i}")

            def found(clients: list[Client] = clients) -> float:
                answers = [c.cart() for c in clients for _ in range(4)]
                return sum(ex.status == 200 for ex in answers) / len(answers)

            crash = Crash(found(), 0.0)
            server.kill_workers()  # the master forks a new worker for each one killed
            crash.found_after_worker_crash = found()
            if where == "shared":
                redis.kill()
                crash.during_store_outage.update(c.cart().status or "failed" for c in clients)
                redis.restart()
                crash.found_after_store_back = found()
            out[where] = crash
        finally:
            for c in clients:
                c.close()
    return out


def _count_one(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "n": data.get("n", 0) + 1}


def _per_call_us(fn: Any, *args: Any, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn(*args)
    return (time.perf_counter() - start) / repeat * 1e6


def measure_store_costs(redis: RedisServer, repeat: int = 300) -> dict[str, dict[str, float]]:
    """Microseconds per session read (``get``) and read-modify-write (``update``), per store, in this process."""
    tmp = temporary_folder("statelab-costs-")  # removed even if the kernel is killed meanwhile
    stores = {"memory": MemoryStore(), "sqlite": SqliteStore(Path(tmp) / "s.sqlite3"), "redis": RedisStore(redis.url)}
    costs = {}
    try:
        for name, store in stores.items():
            sid = store.create({"user": "alice", "cart": []}, 600)
            store.get(sid)  # warm: connection opened, script loaded
            costs[name] = {"get": _per_call_us(store.get, sid, repeat=repeat),
                           "update": _per_call_us(store.update, sid, _count_one, repeat=repeat)}
    finally:
        stores["sqlite"].close()
        stores["redis"].clear()
        stores["redis"].close()
        remove_folder(tmp)
    return costs


@dataclass(repr=False)
class Scaling:
    """Throughput per worker count, on ``cores`` cores; ``fit`` is the USL fitted only when the points can
    carry one (:func:`usl.why_not_fit`: enough points, more cores than the peak), else None and ``no_fit`` says why."""

    cores: int
    workers: list[int]
    rps: list[float]
    p50_ms: list[float]
    errors: int
    fit: usl.Fit | None = None
    no_fit: str = ""

    @property
    def peak(self) -> int:
        """The measured worker count with the most requests per second."""
        return usl.peak_workers(self.workers, self.rps)

    def __repr__(self) -> str:
        points = ", ".join(f"{n}: {r:.0f}" for n, r in zip(self.workers, self.rps, strict=True))
        fit = (f"; USL fit: λ = {self.fit.lam:.0f} req/s, σ = {self.fit.sigma:.2f}, κ = {self.fit.kappa:.4f}"
               if self.fit else f"; no scaling law fitted: {self.no_fit}")
        return (f"requests per second by worker processes ({points}) on {self.cores} "
                f"core{'s' if self.cores != 1 else ''}, peak at {self.peak}; {self.errors} errors{fit}")


def measure_scaling(server: Gunicorn, max_workers: int | None = None, duration: float = 0.15, rounds: int = 2,
                    concurrency: int = 8) -> Scaling:
    """Requests per second of ``GET /cart`` (a session read from the shared store) for 1..``max_workers`` workers.

    The running master grows and shrinks its workers (SIGTTIN/SIGTTOU), so each point costs a fork, not
    a start. Each worker count is measured ``rounds`` times (up the counts, then down), and its best run kept:
    on a shared machine other programs only ever take throughput away. The load generator runs in a child process on
    the same cores, as the store does.
    """
    n_cores = cores()
    top = max_workers or n_cores + 2  # past the cores too: that is where the curve must bend
    before = server.workers
    who = Client(server.url_for("stateful"))
    who.login("loadtester")
    name = server.cookie_name
    cookie = {"Cookie": f"{name}={who.cookies[name]}"}
    who.close()
    path = "/cart" if len(server.modes) == 1 else "/stateful/cart"
    best: dict[int, Any] = {}
    errors = 0
    try:
        for i in range(rounds):  # up, then down, then up: each step forks or stops one worker, never a whole ramp
            for n in (range(1, top + 1) if i % 2 == 0 else range(top, 0, -1)):
                server.set_workers(n)
                r = load.run(server, duration=duration, concurrency=concurrency, path=path, headers=cookie)
                errors += r.errors
                if n not in best or r.rps > best[n].rps:
                    best[n] = r
    finally:
        server.set_workers(before)
    workers = sorted(best)
    rps = [best[n].rps for n in workers]
    why = usl.why_not_fit(workers, rps, n_cores)
    return Scaling(n_cores, workers, rps, [best[n].p50_ms for n in workers], errors,
                   None if why else usl.fit(workers, rps), why)


# --------------------------------------------------------------------------- for the notebook

def missing() -> list[str]:
    """One sentence for each program this lesson needs and this machine lacks (empty when all are here)."""
    from . import gunicorn as g
    from . import redis as r

    out = [] if g.available() else [g.HOW_TO_GET]
    if r.server_binary() is None or not r.client_available():
        out.append(r.HOW_TO_GET)
    return out


def process_tree(server: Gunicorn) -> str:
    """The server's processes as the operating system sees them: the master and its forked workers."""
    lines = [f"pid {server.pid}  gunicorn master  (listens on 127.0.0.1:{server.port}, forks the workers)"]
    lines += [f"  pid {pid}  worker {i + 1}  (its own memory, its own copy of the app)"
              for i, pid in enumerate(server.worker_pids())]
    return "\n".join(lines)


def shares_table(shares: dict[str, Share], workers: int) -> str:
    """Markdown: each design, the share of requests that found their login, and what 1/N would be."""
    rows = ["| design | where state or key lives | requests that found their login | workers that answered |",
            "|---|---|---|---|"]
    for name, share in shares.items():
        where = "each worker" if DESIGNS[name][0] == "per-worker" else "shared by all"
        rows.append(f"| {name} | {where} | {share.found}/{share.asked} = **{share.share:.0%}** "
                    f"(1/N = {1 / workers:.0%}) | {share.workers_seen} of {workers} |")
    return "\n".join(rows)


def crashes_table(crashes: dict[str, Crash]) -> str:
    """Markdown: per deployment, who found their session before and after the crashes (counted by status)."""
    rows = ["| sessions kept | before | after every worker crashed | while the store was down | after it came back "
            "empty |", "|---|---|---|---|---|"]
    for where, c in crashes.items():
        outage = ", ".join(f"{n} x {s}" for s, n in sorted(c.during_store_outage.items(), key=str)) or "-"
        back = "-" if c.found_after_store_back is None else f"{c.found_after_store_back:.0%}"
        rows.append(f"| {'in each worker' if where == 'per-worker' else 'in the shared store'} | {c.found_before:.0%} "
                    f"| {c.found_after_worker_crash:.0%} | {outage} | {back} |")
    return "\n".join(rows)


def scaling_summary(scaling: Scaling) -> str:
    """Markdown from the measured points: the peak next to the core count; the fit only when it may be made."""
    pts = ", ".join(f"{n}: {r:.0f}" for n, r in zip(scaling.workers, scaling.rps, strict=True))
    c, peak = scaling.cores, scaling.peak
    cores = f"{c} core{'s' if c != 1 else ''}"
    text = (f"Conditions: {cores} usable here, shared by the workers, the load generator and Redis; "
            f"{len(scaling.workers)} worker counts, the best of each kept. Requests per second by workers: {pts}. "
            f"Throughput peaked at **N = {peak}**")
    if scaling.fit is None:
        where = ("the core count" if peak == c else f"one worker from the {cores}" if abs(peak - c) == 1
                 else f"with {cores}")
        text += (f", {where}. No scaling law is fitted: {scaling.no_fit}. What these points show is the cores: "
                 "past them, more processes only take turns.")
        if c == 1:
            text += " With one core every extra worker shares it: this is contention, not scaling."
        return text
    fit = scaling.fit
    spread = fit.rmse / (sum(scaling.rps) / len(scaling.rps))
    bend = (f"peaks near N = {fit.peak:.1f}" if fit.peak < 100 else
            f"levels off near {fit.ceiling:.0f} req/s" if fit.ceiling < 1e6 else "rises in a straight line")
    text += (f", below the {cores}, so a fit may say something about the software: λ = {fit.lam:.0f} req/s, "
             f"σ = {fit.sigma:.2f}, κ = {fit.kappa:.4f}; the curve {bend}. The workers do not coordinate, so κ is "
             "not coherency here: it is whatever makes throughput fall past the peak.")
    if spread > 0.15:
        text += f" The points scatter around the curve by {spread:.0%}: other programs took CPU during the runs."
    return text


def costs_table(costs: dict[str, dict[str, float]], request_ms: float) -> str:
    """Markdown: microseconds per session read and per read-modify-write, and their share of one HTTP request."""
    rows = ["| session store | read (get) | read-modify-write (update) | read as a share of one request |",
            "|---|---|---|---|"]
    for name, c in costs.items():
        rows.append(f"| {name} | {c['get']:.1f} µs | {c['update']:.1f} µs | {c['get'] / (request_ms * 10):.2f}% |")
    return "\n".join(rows)


def request_ms(url: str, n: int = 20) -> float:
    """Median milliseconds of one ``GET /health`` from this process: the scale for a store's cost."""
    import statistics

    with Client(url) as c:
        return statistics.median(c.health().ms for _ in range(n))


# --------------------------------------------------------------------------- a real balancer in front

@dataclass
class Front:
    """One balancer's traffic: share found before a server was taken out, and after, by the users' first server."""

    found_before: float = 0.0
    found_after: dict[str, float] = field(default_factory=dict)  # first server's name -> share found
    server_errors: int = 0  # 5xx answers and failed connections, in all

    def __repr__(self) -> str:  # a sentence with rounded numbers, not the dataclass's fields (issue 20)
        after = ", ".join(f"{name}: {_pct(v)}" for name, v in self.found_after.items()) or "-"
        return (f"<logins found: {_pct(self.found_before)} before a server was taken out; after, by first server: "
                f"{after}; {self.server_errors} server error(s)>")


def measure_balancers(users: int = 6, requests: int = 4) -> dict[str, Front]:
    """HAProxy and statelab's own balancer, round robin and sticky, in front of the same two memory-session
    servers, on the same traffic; then server 0 is taken out (killed) and the same users ask again."""
    from ..topology.balancer import LoadBalancer
    from ..topology.cluster import Cluster
    from .haproxy import HAProxy

    cluster = Cluster(2, "stateful", store="memory")
    fronts: dict[str, Any] = {}
    try:
        fronts = {"HAProxy, round robin": HAProxy(cluster.servers),
                  "HAProxy, cookie SRV insert": HAProxy(cluster.servers, sticky=True),
                  "statelab, round_robin": LoadBalancer(cluster.servers, "round_robin"),
                  "statelab, sticky": LoadBalancer(cluster.servers, "sticky")}
        crowds = {name: [Client(f.url) for _ in range(users)] for name, f in fronts.items()}
        first: dict[str, list[str]] = {}
        out = {name: Front() for name in fronts}

        def ask(name: str) -> list[Any]:
            return [[c.me() for _ in range(requests)] for c in crowds[name]]

        for name, crowd in crowds.items():
            first[name] = [c.login(f"user{i}").served_by or "?" for i, c in enumerate(crowd)]
            answers = ask(name)
            flat = [e for per_user in answers for e in per_user]
            out[name].found_before = sum(e.status == 200 for e in flat) / len(flat)
            out[name].server_errors += sum(e.status is None or e.status >= 500 for e in flat)
        dead = cluster.servers[0].name
        cluster.kill(0)
        time.sleep(0.5)  # HAProxy checks every 100 ms and takes a server out after two failures
        for name in crowds:
            answers = ask(name)
            for server in {dead, *(s.name for s in cluster.servers[1:])}:
                mine = [e for who, per_user in zip(first[name], answers, strict=True) if who == server
                        for e in per_user]
                if mine:
                    out[name].found_after[server] = sum(e.status == 200 for e in mine) / len(mine)
            out[name].server_errors += sum(e.status is None or e.status >= 500 for a in answers for e in a)
        for crowd in crowds.values():
            for c in crowd:
                c.close()
        return out
    finally:
        for f in fronts.values():
            f.stop()
        cluster.stop()


def balancers_table(fronts: dict[str, Front], dead: str = "server-0") -> str:
    """Markdown: per balancer, the share found before, and after server 0 was taken out, by first server."""
    rows = ["| balancer | found their session, both servers up | after server-0 is out: users who logged in on "
            "server-0 | ... on server-1 | 5xx or failed |", "|---|---|---|---|---|"]
    for name, f in fronts.items():
        dead_share = f.found_after.get(dead)
        live = [v for k, v in f.found_after.items() if k != dead]
        rows.append(f"| {name} | {f.found_before:.0%} | {'-' if dead_share is None else f'{dead_share:.0%}'} | "
                    f"{'-' if not live else f'{min(live):.0%}'} | {f.server_errors} |")
    return "\n".join(rows)


#: Why the measured answer is what it is: the "you predicted; you measured" cell of notebook 13 shows it.
WHY = ("each worker is a process with its own memory and its own key, and the operating system hands each connection "
       "to whichever worker takes it: only the worker that made your session, or signed your token or cookie, can read "
       "it.")


def answer(shares: dict[str, Share]) -> str:
    """Which of notebook 13's prediction choices ``measure_shares`` measured: the share of a crowd's requests that
    found their login with per-worker state, for sessions, tokens and signed cookies, in words."""
    per_worker = {DESIGNS[n][1]: s.share for n, s in shares.items() if DESIGNS[n][0] == "per-worker"}
    kinds = tuple("all" if v >= 0.99 else "none" if v <= 0.01 else "about half" if 0.2 <= v <= 0.8 else f"{v:.0%}"
                  for v in (per_worker.get(mode, 0.0) for mode in MODES))   # sessions, tokens, signed cookies
    return {("all",) * 3: "all of them: each user keeps coming back to the worker that logged them in",
            ("about half", "all", "all"): "about 1 in 2 for sessions; all of them for tokens and signed cookies",
            ("about half",) * 3: "about 1 in 2 for sessions, tokens and signed cookies alike",
            ("none",) * 3: "none of them"}.get(kinds, "sessions, tokens, signed cookies: " + ", ".join(kinds))
