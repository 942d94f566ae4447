"""Row "Scalability": what happens to sessions when you add servers, and what each fix costs.

The seed says stateful "scaling requires synchronization of session data" and stateless
"horizontal scaling is straightforward". This experiment grows a cluster one server at a
time (``cluster.add_server()``) and, at each size, lets many users log in and make several
requests in a random interleaving, the way real users arrive. It counts the share of those
requests that found their session:

* per-server memory sessions behind round robin: about 1/N (the request has to land on the
  one server that holds the session);
* three fixes, each measured the same way: sticky routing, one shared store (SQLite), and
  tokens (stateless);
* what each fix costs, measured: sticky users of a crashed server are re-pinned and lose their
  session; a shared-store lookup is slower than a dict and, when the store is unreachable, every
  server fails; a token is many more bytes on every request, takes longer to verify than a
  dictionary lookup, and only servers that share the signing key accept it.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..client import Client
from ..shop.plugins import store_errors_as_503
from ..shop.server import Server
from ..shop.sessions import MemoryStore, OutageStore, SqliteStore, new_session_id
from ..topology.cluster import Cluster
from . import Evidence, progress, record

ROW = "scalability"

#: The four set-ups compared: label -> (mode, store, balancer strategy).
SETUPS: dict[str, tuple[str, str, str]] = {
    "memory + round robin": ("stateful", "memory", "round_robin"),
    "memory + sticky": ("stateful", "memory", "sticky"),
    "shared store + round robin": ("stateful", "sqlite", "round_robin"),
    "tokens + round robin": ("stateless", "memory", "round_robin"),
}
BROKEN = "memory + round robin"


def share_found(url: str, users: int, requests: int, rng: random.Random,
                prefix: str = "u") -> tuple[float, list[Client], list[float]]:
    """Log ``users`` new users in, then send their ``requests`` each in a random interleaving.

    Returns the share of those requests that found the session (200, not 401), the clients,
    and each request's round-trip time in ms.
    """
    clients = [Client(url) for _ in range(users)]
    for i, c in enumerate(clients):
        c.login(f"{prefix}{i}")
    turns = [c for c in clients for _ in range(requests)]
    rng.shuffle(turns)
    found, ms = 0, []
    for c in turns:
        ex = c.add_to_cart("book")
        found += ex.status == 200
        ms.append(ex.ms)
    return found / len(turns), clients, ms


def stop_together(things: list[Any]) -> None:
    """Stop several clusters at once (each stop waits for its servers' poll interval)."""
    threads = [threading.Thread(target=t.stop, name=f"statelab-stop-{i}") for i, t in enumerate(things)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def per_call_us(fn: Callable[[], Any], calls: int = 200, rounds: int = 5) -> float:
    """Median time of one ``fn()`` call in microseconds (batches of ``calls``, median over rounds)."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times)


def run(*, quick: bool = False, servers: int | None = None, users: int | None = None,
        requests: int | None = None, fix_users: int | None = None, fix_requests: int | None = None) -> Evidence:
    """Grow each set-up from 1 to ``servers`` servers and count the requests that find their session.

    At every size, ``users`` new users (``fix_users`` for the three fixes, which do not vary from
    run to run) each log in and make ``requests`` (``fix_requests``) cart updates in a random
    interleaving (``quick``: the fixes at the largest size only). Then the costs of the fixes are
    measured at the largest size.
    """
    servers = servers or (4 if quick else 5)
    users = users or (8 if quick else 16)
    requests = requests or 5
    fix_users = fix_users or (4 if quick else 8)
    fix_requests = fix_requests or (2 if quick else 3)
    if not 2 <= servers <= 12:
        raise ValueError("servers must be from 2 to 12")
    began = time.perf_counter()
    rng = random.Random()
    sizes = list(range(1, servers + 1))
    share: dict[str, dict[int, float]] = {label: {} for label in SETUPS}
    median_ms: dict[str, float] = {}
    load: dict[str, dict[str, int]] = {}
    costs: dict[str, Any] = {}
    steps = [(label, n) for label in SETUPS for n in sizes]
    bar = iter(progress(steps, "adding servers"))

    tmp = tempfile.TemporaryDirectory(prefix="statelab-scale-", ignore_cleanup_errors=True)
    sqlite = SqliteStore(Path(tmp.name) / "sessions.sqlite3")
    shared = OutageStore(sqlite)  # a real SQLite store that can be switched off (see notebook 04)
    clusters: dict[str, Cluster] = {}
    clients: dict[str, list[Client]] = {}
    try:
        for label, (mode, store, strategy) in SETUPS.items():
            kind: Any = shared if store == "sqlite" else store
            clusters[label] = Cluster(servers=1, mode=mode, store=kind, balancer=strategy,
                                      plugins=[store_errors_as_503])
        for n in sizes:
            for label, c in clusters.items():
                next(bar)
                if n > 1:
                    c.add_server()  # live: the balancer routes to it from the next request on
                if quick and label != BROKEN and n != sizes[-1]:
                    continue  # quick: the fixes are measured at the largest size only
                c.balancer.reset_counts()
                u, r = (users, requests) if label == BROKEN else (fix_users, fix_requests)
                share[label][n], clients[label], ms = share_found(c.url, u, r, rng, prefix=f"n{n}-")
                median_ms[label] = statistics.median(ms)
                load[label] = c.balancer.counts
        for _ in bar:  # finish the bar
            pass
        costs.update(_sticky_failover(clusters["memory + sticky"], clients["memory + sticky"]))
        costs.update(_store_outage(clusters["shared store + round robin"], clients["shared store + round robin"],
                                   shared, sqlite, rounds=3 if quick else 5))
        costs.update(_token_costs(clusters["tokens + round robin"], clients["tokens + round robin"]))
    finally:
        stop_together(list(clusters.values()))
        sqlite.close()
        tmp.cleanup()

    broken = share[BROKEN]
    top = sizes[-1]
    base = median_ms["memory + sticky"] or 1.0
    measurements: dict[str, Any] = {
        "servers": sizes,
        "share found, memory + round robin": broken,
        "1/N": {n: round(1 / n, 3) for n in sizes},
        **{f"share found, {label}": share[label] for label in SETUPS if label != BROKEN},
        f"median request ms at {top} servers": median_ms,
        f"latency relative to memory + sticky at {top} servers": {k: v / base for k, v in median_ms.items()},
        f"requests per server at {top} servers (last step)": load,
        **costs,
    }
    deviation = statistics.fmean(abs(broken[n] - 1 / n) for n in sizes)
    fixes = [label for label in SETUPS if label != BROKEN]
    checks = {
        "with per-server memory and round robin, fewer requests find their session as servers are added":
            broken[1] >= 0.95 and broken[1] - broken[top] >= 0.3,
        "that share is about 1/N": deviation <= 0.15,
        "sticky routing keeps every session, with no synchronization":
            min(share["memory + sticky"].values()) >= 0.99,
        "a shared store keeps every session": min(share["shared store + round robin"].values()) >= 0.99,
        "tokens keep every session": min(share["tokens + round robin"].values()) >= 0.99,
        "sticky's cost: users of a crashed server are re-pinned and lose their session":
            costs["sticky: users re-pinned after a crash"] >= 1
            and costs["sticky: re-pinned users who lost their session"]
            == costs["sticky: users re-pinned after a crash"]
            and costs["sticky: users who lost their session"] < costs["sticky: users"],
        "the shared store's cost: a lookup is slower than a memory lookup":
            costs["shared store: lookup us"] >= 3 * costs["memory: lookup us"],
        "the shared store's cost: when it is unreachable, every server fails":
            costs["shared store: requests answered while it is unreachable"] == 0
            and costs["shared store: requests answered once it is back"] == costs["shared store: users"],
        "the token's cost: many more bytes on every request than a session id":
            costs["token: bytes per request"] >= 3 * costs["session id: bytes per request"],
        "the token's cost: verifying it is slower than a memory lookup":
            costs["token: verify us"] >= 3 * costs["memory: lookup us"],
        "tokens need every server to share the key: a server with its own key refuses them":
            costs["token: refused by a server with its own key"] == costs["token: sent to a server with its own key"],
    }
    core = (checks["with per-server memory and round robin, fewer requests find their session as servers are added"]
            and checks["tokens keep every session"])
    nuance = (checks["sticky routing keeps every session, with no synchronization"]
              or checks["a shared store keeps every session"]
              or checks["tokens need every server to share the key: a server with its own key refuses them"])
    verdict = "does not hold" if not core else ("holds with nuance" if nuance else "holds")
    kept = min(min(share[label].values()) for label in fixes)
    fixed = "every request" if kept >= 0.995 else f"at least {kept:.0%} of requests"
    reading = (
        f"With per-server memory and round robin, {broken[1]:.0%} of requests found their session on 1 server "
        f"and {broken[top]:.0%} on {top} (1/N = {1 / top:.0%}). With sticky routing, a shared store or tokens, "
        f"{fixed} found it at every size, at a cost: {costs['sticky: users who lost their session']} of "
        f"{costs['sticky: users']} sticky users lost their session when one server crashed, a shared-store lookup "
        f"took {costs['shared store: lookup us']:.0f} us against {costs['memory: lookup us']:.1f} us in memory and "
        f"its outage failed every server, and a token was {costs['token: bytes per request']} bytes per request "
        f"against {costs['session id: bytes per request']} for a session id."
    )
    return record(Evidence(row=ROW, measurements=measurements, checks=checks, verdict=verdict, reading=reading,
                           seconds=time.perf_counter() - began, extra={"share": share, "sizes": sizes}))


def _sticky_failover(c: Cluster, clients: list[Client]) -> dict[str, Any]:
    """Crash one server under sticky routing: its users are re-pinned to a live one, without their session."""
    pinned = {id(cl): cl.cookies.get("statelab-lb") for cl in clients}
    pins = list(pinned.values())
    victim = max(set(pins), key=pins.count) or c.servers[0].name  # the server most users are pinned to
    c.kill(victim)
    lost = repinned = lost_repinned = 0
    for cl in clients:
        ex = cl.cart()
        moved = ex.served_by != pinned[id(cl)]
        repinned += moved
        lost += ex.status == 401
        lost_repinned += moved and ex.status == 401
    c.restart(victim)
    return {"sticky: users": len(clients), "sticky: users re-pinned after a crash": repinned,
            "sticky: users who lost their session": lost, "sticky: re-pinned users who lost their session":
            lost_repinned}


def _store_outage(c: Cluster, clients: list[Client], shared: OutageStore, sqlite: SqliteStore,
                  rounds: int = 5) -> dict[str, Any]:
    """Time a lookup in the shared file, then cut the store off and see which servers still answer."""
    sid = clients[0].cookies.get(c.cookie_name, "")
    memory = MemoryStore()
    msid = memory.create({"user": "u", "cart": [{"item": "book", "qty": 3}]}, 60)
    memory_us = per_call_us(lambda: memory.get(msid), calls=1000)
    store_us = per_call_us(lambda: sqlite.get(sid), calls=50, rounds=rounds)
    with shared.outage():
        during = [cl.cart() for cl in clients]
    after = [cl.cart() for cl in clients]
    return {"memory: lookup us": memory_us, "shared store: lookup us": store_us,
            "shared store: users": len(clients),
            "shared store: requests answered while it is unreachable": sum(ex.status == 200 for ex in during),
            "shared store: servers that answered 503 during the outage":
                len({ex.served_by for ex in during if ex.status == 503}),
            "shared store: requests answered once it is back": sum(ex.status == 200 for ex in after)}


def _token_costs(c: Cluster, clients: list[Client]) -> dict[str, Any]:
    """Bytes a token adds to every request, the time to verify one, and who accepts it."""
    token = clients[0].token or ""
    keyring = c.keyring
    assert keyring is not None
    verify_us = per_call_us(lambda: keyring.verify(token), calls=100)
    # a session id is what the same user sends in stateful mode: 32 random bytes, URL-safe
    sid_bytes = len(f"Cookie: sid={new_session_id()}")
    token_bytes = len(f"Authorization: Bearer {token}")
    with Server("stateless", name="new-server-own-key") as outsider:  # joined without the cluster's key
        outsider.start()
        answers = []
        for cl in clients:
            probe = Client(outsider.url)
            probe.token = cl.token
            answers.append(probe.cart())
    return {"token: bytes per request": token_bytes, "session id: bytes per request": sid_bytes,
            "token: verify us": verify_us,
            "token: sent to a server with its own key": len(answers),
            "token: refused by a server with its own key": sum(ex.status == 401 for ex in answers)}


def plot(ev: Evidence, ax: Any = None) -> Any:
    """Share of requests that found their session, against the number of servers, per set-up."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.4))
    else:
        fig = ax.figure
    sizes = ev.extra["sizes"]
    # the three fixes overlap at 100%: shrinking markers keep each one visible
    styles = {"memory + round robin": ("o-", 6), "memory + sticky": ("s--", 11),
              "shared store + round robin": ("^--", 8), "tokens + round robin": ("d:", 5)}
    for label, shares in ev.extra["share"].items():
        style, size = styles.get(label, ("o-", 6))
        measured = [n for n in sizes if n in shares]
        ax.plot(measured, [shares[n] for n in measured], style, markersize=size, label=label)
    ax.plot(sizes, [1 / n for n in sizes], color="grey", linewidth=1, linestyle="--", label="1/N")
    ax.set_xlabel("servers behind the balancer (N)")
    ax.set_ylabel("requests that found their session")
    ax.set_xticks(sizes)
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    ax.set_title("Adding servers: who still finds their session?")
    ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    return fig
