"""Choosing: the usual production answer, measured against the two pure designs.

Most production web apps are neither purely stateful nor purely stateless: the *app servers* are
stateless (any of them can answer any request, any of them can die) and the state lives in a
shared store (a database, Redis). Here that is ``Cluster(mode="stateful", store="sqlite")``
behind round robin. It is measured on the same axes as the two pure designs:

* **memory + sticky**: sessions in each server's memory, the balancer pins each user;
* **stateless tokens**: the cart in a signed JWT, round robin;
* **shared store**: sessions in one store every server reads, round robin, no affinity.

Axes: users whose cart is lost when a server crashes; requests that find their session under
round robin; whether logout revokes a stolen credential at once; the median time of ``GET /cart``;
and trips to the shared store per request (what the shared store costs: it is on every request's
path, so it is the new thing to run, scale and keep alive).
"""

from __future__ import annotations

import html
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..client import Client
from ..shop.sessions import Session, SqliteStore, Updater
from ..topology.cluster import Cluster
from . import Evidence, progress, record

ROW = "choosing"
CRASHED = 1  # server-1 crashes
DESIGNS = {
    "sticky": "memory + sticky",
    "tokens": "stateless tokens",
    "shared": "shared store (usual production)",
}


class CountingStore:
    """A session store that counts the calls the servers make to it (a thin wrapper, same behaviour)."""

    def __init__(self, inner: SqliteStore) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.trips = 0
        self._lock = threading.Lock()

    def _trip(self) -> None:
        with self._lock:
            self.trips += 1

    def create(self, data: Session, ttl: float) -> str:
        self._trip()
        return self.inner.create(data, ttl)

    def get(self, sid: str) -> Session | None:
        self._trip()
        return self.inner.get(sid)

    def update(self, sid: str, change: Updater) -> Session | None:
        self._trip()
        return self.inner.update(sid, change)

    def delete(self, sid: str) -> bool:
        self._trip()
        return self.inner.delete(sid)

    def count(self) -> int:
        return self.inner.count()

    def clear(self) -> None:
        self.inner.clear()


def _has_book(ex: Any) -> bool:
    return ex.ok and isinstance(ex.body, dict) and any(line.get("item") == "book" for line in ex.body.get("cart", []))


def _measure(key: str, cluster: Cluster, store: CountingStore | None, users: int, reads: int,
             timed: int, replays: int) -> dict[str, Any]:
    """Every axis, on one design's cluster (which this call crashes at the end)."""
    crowd = []
    for i in range(users):
        client = Client(cluster.url)
        if not (client.login(f"user{i}").ok and client.add_to_cart("book").ok):
            raise RuntimeError(f"could not set up user{i} on {DESIGNS[key]}: {client.last.summary()}")
        crowd.append(client)
    out: dict[str, Any] = {}

    # 1. round robin, no affinity: does each request find its session?
    own = cluster.strategy
    cluster.strategy = "round_robin"
    found = sum(_has_book(c.cart()) for c in crowd for _ in range(reads))
    cluster.strategy = own
    out["found"] = found / (users * reads)

    # 2. the time of one GET /cart (median), and the trips to a shared store it makes
    before = store.trips if store is not None else 0
    times = [crowd[0].cart().ms for _ in range(timed)]
    out["p50_ms"] = statistics.median(times)
    out["trips"] = ((store.trips - before) / timed) if store is not None else 0.0

    # 3. a thief copies a victim's credential (cookies or token); the victim logs out
    victim, thief = Client(cluster.url), Client(cluster.url)
    victim.login("victim")
    for name, value in victim.cookies.items():
        thief.set_cookie(name, value)
    thief.token = victim.token
    worked = thief.me().ok
    victim.logout()
    out["stolen_worked"] = worked
    out["replays_accepted"] = sum(thief.me().ok for _ in range(replays))

    # 4. server-1 crashes: whose cart is gone?
    cluster.kill(CRASHED)
    out["lost"] = sum(not _has_book(c.cart()) for c in crowd)
    for c in [*crowd, victim, thief]:
        c.close()
    return out


def run(*, quick: bool = False, users: int | None = None, reads: int | None = None,
        timed: int | None = None, replays: int = 3) -> Evidence:
    """Measure the three designs on the same axes, three servers each.

    ``users`` shoppers per design (default 12, quick 6), each with a book in the cart; ``reads``
    cart reads per user under round robin (default 3, quick 2); ``timed`` requests for the
    median latency (default 30, quick 12); ``replays`` requests a thief makes after logout.
    """
    users = users if users is not None else (6 if quick else 12)
    reads = reads if reads is not None else (2 if quick else 3)
    timed = timed if timed is not None else (12 if quick else 30)
    for name, value, low, high in (("users", users, 3, 300), ("reads", reads, 1, 20), ("timed", timed, 3, 500),
                                   ("replays", replays, 1, 50)):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{name} must be a whole number from {low} to {high}, not {value!r}")
    began = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    tmp = tempfile.TemporaryDirectory(prefix="statelab-choosing-", ignore_cleanup_errors=True)
    sqlite = SqliteStore(Path(tmp.name) / "sessions.sqlite3")
    counting = CountingStore(sqlite)
    setups = {
        "sticky": (dict(mode="stateful", store="memory", balancer="sticky"), None),
        "tokens": (dict(mode="stateless", balancer="round_robin"), None),
        "shared": (dict(mode="stateful", store=counting, balancer="round_robin"), counting),
    }
    try:
        for key in progress(setups, "three designs"):
            options, store = setups[key]
            with Cluster(3, **options) as cluster:
                results[key] = _measure(key, cluster, store, users, reads, timed, replays)
    finally:
        sqlite.close()
        tmp.cleanup()
    return record(_judge(results, users, replays, quick, time.perf_counter() - began))


def _judge(r: dict[str, dict[str, Any]], users: int, replays: int, quick: bool, seconds: float) -> Evidence:
    m: dict[str, Any] = {
        "users": users,
        "replays": replays,
        "lost_on_crash": {k: r[k]["lost"] for k in DESIGNS},
        "found_share_round_robin": {k: round(r[k]["found"], 3) for k in DESIGNS},
        "replays_accepted_after_logout": {k: r[k]["replays_accepted"] for k in DESIGNS},
        "p50_ms": {k: round(r[k]["p50_ms"], 2) for k in DESIGNS},
        "store_trips_per_request": {k: round(r[k]["trips"], 2) for k in DESIGNS},
    }
    lost, found, accepted = m["lost_on_crash"], m["found_share_round_robin"], m["replays_accepted_after_logout"]
    stolen_worked = all(r[k]["stolen_worked"] for k in DESIGNS)
    features = {
        "shared store: no cart lost when a server crashes": lost["shared"] == 0,
        "shared store: every request finds its session under round robin (no affinity)": found["shared"] == 1.0,
        "shared store: logout revokes a stolen session id at once": stolen_worked and accepted["shared"] == 0,
    }
    checks = {
        **features,
        "memory + sticky: a crash loses the carts pinned to the dead server": 0 < lost["sticky"] < users,
        "memory + sticky: without its affinity, requests miss their session": found["sticky"] < 1.0,
        "memory + sticky: logout revokes at once": accepted["sticky"] == 0,
        "stateless tokens: a crash loses no cart, and round robin finds every cart":
            lost["tokens"] == 0 and found["tokens"] == 1.0,
        "stateless tokens: a stolen token still works after logout": accepted["tokens"] == replays,
        "shared store: every request goes to the shared store (the new thing to run and keep alive)":
            m["store_trips_per_request"]["shared"] >= 1,
    }
    if not all(features.values()):
        verdict = "does not hold"
    elif m["store_trips_per_request"]["shared"] > 0:
        verdict = "holds with nuance"
    else:
        verdict = "holds"
    p50 = m["p50_ms"]
    reading = (
        f"The shared store lost {lost['shared']} of {users} carts in a crash (memory + sticky lost {lost['sticky']}),"
        f" found the session on {found['shared']:.0%} of round-robin requests (memory: {found['sticky']:.0%}), and"
        f" refused a stolen id at once ({accepted['shared']}/{replays} accepted; tokens: {accepted['tokens']}/"
        f"{replays}). The price: {m['store_trips_per_request']['shared']:.1f} trips to the store per request;"
        f" median GET /cart {p50['shared']:.1f} ms vs {p50['sticky']:.1f} ms (memory) and {p50['tokens']:.1f} ms"
        " (tokens)."
    )
    return Evidence(row=ROW, measurements=m, checks=checks, verdict=verdict, reading=reading, seconds=seconds,
                    extra={"quick": quick, "designs": dict(DESIGNS), "key_numbers": {
                        "carts lost in a crash (sticky / tokens / shared)":
                            f"{lost['sticky']} / {lost['tokens']} / {lost['shared']} of {users}",
                        "stolen credential accepted after logout (sticky / tokens / shared)":
                            f"{accepted['sticky']} / {accepted['tokens']} / {accepted['shared']} of {replays}",
                        "store trips per request (shared)": m["store_trips_per_request"]["shared"],
                    }})


# --------------------------------------------------------------------------- showing it

def table_html(ev: Evidence) -> str:
    """The three designs side by side on every axis, as an HTML table."""
    m = ev.measurements
    users, replays = m["users"], m["replays"]

    def yes(ok: bool) -> str:
        return "<b>yes</b>" if ok else "no"

    rows = [
        ("carts lost when server-1 crashes", lambda k: f"{m['lost_on_crash'][k]} of {users}"),
        ("requests that find their session under round robin",
         lambda k: f"{m['found_share_round_robin'][k]:.0%}"),
        ("logout revokes a stolen credential at once",
         lambda k: f"{yes(m['replays_accepted_after_logout'][k] == 0)} "
                   f"({m['replays_accepted_after_logout'][k]}/{replays} accepted)"),
        ("median GET /cart", lambda k: f"{m['p50_ms'][k]:.1f} ms"),
        ("trips to a shared store per request", lambda k: f"{m['store_trips_per_request'][k]:.1f}"),
    ]
    head = "".join(f"<th>{html.escape(DESIGNS[k])}</th>" for k in DESIGNS)
    body = "".join(f"<tr><td style='text-align:left'>{html.escape(label)}</td>"
                   + "".join(f"<td>{fmt(k)}</td>" for k in DESIGNS) + "</tr>" for label, fmt in rows)
    return f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>"


def plot(ev: Evidence, ax: Any = None) -> Any:
    """Grouped bars: carts lost, sessions found under round robin, stolen credential accepted (shares)."""
    import matplotlib.pyplot as plt

    m = ev.measurements
    axes = {
        "carts lost\nin a crash": {k: m["lost_on_crash"][k] / m["users"] for k in DESIGNS},
        "requests that find\nthe session (round robin)": m["found_share_round_robin"],
        "stolen credential\naccepted after logout": {k: m["replays_accepted_after_logout"][k] / m["replays"]
                                                     for k in DESIGNS},
    }
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 3.0))
    else:
        fig = ax.figure
    width = 0.26
    for i, key in enumerate(DESIGNS):
        xs = [j + (i - 1) * width for j in range(len(axes))]
        ax.bar(xs, [axes[a][key] for a in axes], width, label=DESIGNS[key])
    ax.set_xticks(range(len(axes)), list(axes))
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("share")
    ax.set_title("Three designs, same crash, same thief")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig
