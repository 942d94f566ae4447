"""Row "Fault Tolerance": crash one of three servers while users shop, then take the shared store down.

The seed says: stateful, "Failure in one server affects sessions stored on others"; stateless,
"Failures are isolated, impacting only individual requests". Three designs face the same crash
of ``server-1`` while every user, logged in with a book in the cart, keeps asking for the cart:

* **memory**: each server keeps its sessions in its own memory; sticky routing pins each user
  to the server that holds the session.
* **sqlite**: every server reads and writes one shared SQLite session store.
* **stateless**: no sessions at all; the cart travels in each user's signed token.

We count who lost the cart (grouped by the server that answered their login, which is where an
in-memory session lives) and how many requests failed outright while the server went down (the
balancer retries a refused connection on another server, so only requests in flight can fail).

Then the shared store gets its own failure: :class:`OutageStore` switches it off, as a crashed
database server or a cut network would. A shared store removes the server as a single point of
failure for sessions and makes *itself* one: every stateful user is affected, on every server.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Flask, jsonify

from ..shop.sessions import Session, SessionStore, SqliteStore, Updater
from ..topology.cluster import Cluster
from . import Evidence, progress, record
from .crowd import Shopper, by_home, close, has_cart, log_in, lost_carts, shop_while

ROW = "fault_tolerance"
CRASHED = 1  # server-1 crashes
DESIGNS = {
    "memory": "in-memory sessions + sticky routing",
    "sqlite": "shared SQLite session store",
    "stateless": "stateless tokens (cart in the JWT)",
}


class StoreUnavailable(RuntimeError):
    """The session store cannot be reached."""


class OutageStore:
    """A session store you can switch off: while it is down every call fails, as calls to a
    crashed database server would. It wraps a real store (e.g. :class:`SqliteStore`) and changes
    nothing else: what it holds is still there when it comes back.

    Servers answer a failed store call with 503 when started with :func:`store_errors_as_503`.
    """

    def __init__(self, inner: SessionStore) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.down = False

    def fail(self) -> None:
        """The store goes down: every call raises :class:`StoreUnavailable`."""
        self.down = True

    def recover(self) -> None:
        """The store is back, with everything it held."""
        self.down = False

    @contextlib.contextmanager
    def outage(self) -> Iterator[OutageStore]:
        """``with store.outage(): ...`` the store is down inside the block."""
        self.fail()
        try:
            yield self
        finally:
            self.recover()

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("the shared session store is unreachable")

    def create(self, data: Session, ttl: float) -> str:
        self._check()
        return self.inner.create(data, ttl)

    def get(self, sid: str) -> Session | None:
        self._check()
        return self.inner.get(sid)

    def update(self, sid: str, change: Updater) -> Session | None:
        self._check()
        return self.inner.update(sid, change)

    def delete(self, sid: str) -> bool:
        self._check()
        return self.inner.delete(sid)

    def count(self) -> int:
        self._check()
        return self.inner.count()

    def clear(self) -> None:
        self._check()
        self.inner.clear()

    def close(self) -> None:
        closer = getattr(self.inner, "close", None)
        if closer is not None:
            closer()


def store_errors_as_503(app: Flask) -> None:
    """Plugin: a server whose store is unreachable answers 503 JSON (without it: a 500)."""

    @app.errorhandler(StoreUnavailable)
    def store_unavailable(e: StoreUnavailable):
        return jsonify(error=f"service unavailable: {e}"), 503


def _crash(cluster: Cluster, crowd: list[Shopper], workers: int) -> dict[str, Any]:
    """Crash ``server-1`` while ``crowd`` shops; who lost the cart, and how many requests failed."""
    traffic = shop_while(crowd, lambda: cluster.kill(CRASHED), workers=workers)
    lost = lost_carts(crowd)
    return {"requests": traffic.requests, "failed": traffic.failed, "logged_out_answers": traffic.logged_out,
            "lost": len(lost), "by_home": by_home(crowd, lost), "failures": traffic.failures}


def _affected(crowd: list[Shopper]) -> tuple[int, set[str]]:
    """(users whose ``GET /cart`` did not answer their cart, servers that answered with an error)."""
    bad, servers = 0, set()
    for shopper in crowd:
        kept, ex = has_cart(shopper)
        if not kept:
            bad += 1
            if ex.served_by:
                servers.add(ex.served_by)
    return bad, servers


def run(*, quick: bool = False, users: int | None = None, workers: int = 3) -> Evidence:
    """Crash one of three servers under each design, then take the shared store down.

    ``users`` shoppers per design (default 36, quick 9), kept busy by ``workers`` threads.
    Counts, not timings: who lost the cart, which server their session was on, how many
    requests failed, and who noticed the store outage.
    """
    n = users if users is not None else (9 if quick else 36)
    if not isinstance(n, int) or not 3 <= n <= 600:
        raise ValueError("users must be a whole number from 3 to 600")
    began = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    crowds: dict[str, list[Shopper]] = {}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="statelab-ft-", ignore_cleanup_errors=True))
        store = OutageStore(SqliteStore(Path(tmp) / "sessions.sqlite3"))
        stack.callback(store.close)
        clusters = {
            "memory": lambda: Cluster(3, "stateful", store="memory", balancer="sticky"),
            "sqlite": lambda: Cluster(3, "stateful", store=store, balancer="round_robin",
                                      plugins=[store_errors_as_503]),
            "stateless": lambda: Cluster(3, "stateless", balancer="round_robin"),
        }
        started: dict[str, Cluster] = {}
        steps = [("crash", d) for d in DESIGNS] + [("outage", None)]
        for step, design in progress(steps, "crash, then store outage"):
            if step == "crash":
                cluster = stack.enter_context(clusters[design]())
                started[design] = cluster
                crowds[design] = log_in(cluster.url, n, prefix=f"{design}-user")
                stack.callback(close, crowds[design])
                results[design] = _crash(cluster, crowds[design], workers)
                continue
            started["sqlite"].restart(CRASHED)  # every server up again: the store is what fails now
            with store.outage():
                outage_sqlite, outage_servers = _affected(crowds["sqlite"])
                outage_stateless, _ = _affected(crowds["stateless"])
            carts_back = n - len(lost_carts(crowds["sqlite"]))

    crashed = f"server-{CRASHED}"
    home = results["memory"]["by_home"]
    on_crashed, lost_on_crashed = home.get(crashed, (0, 0))
    on_others = sum(u for h, (u, _) in home.items() if h != crashed)
    lost_on_others = sum(k for h, (_, k) in home.items() if h != crashed)
    failed = {d: r["failed"] for d, r in results.items()}
    all_servers = {f"server-{i}" for i in range(3)}
    measurements: dict[str, Any] = {
        "users per design": n,
        "crashed server": crashed,
        "memory: sessions on the crashed server": on_crashed,
        "memory: lost among them": lost_on_crashed,
        "memory: sessions on the other servers": on_others,
        "memory: lost among those": lost_on_others,
        "users who lost their cart": {d: r["lost"] for d, r in results.items()},
        "requests during the crash window": {d: r["requests"] for d, r in results.items()},
        "failed requests (no answer or 5xx)": failed,
        "401 answers during the crash window": {d: r["logged_out_answers"] for d, r in results.items()},
        "store outage: stateful users affected": outage_sqlite,
        "store outage: servers that answered with an error": sorted(outage_servers),
        "store outage: stateless users affected": outage_stateless,
        "after the outage: stateful users with their cart back": carts_back,
    }
    checks = {
        "memory store: the crash logged out every user whose session was on the crashed server":
            on_crashed > 0 and lost_on_crashed == on_crashed,
        "memory store: no user whose session was on another server lost the cart (the seed's wording is wrong)":
            on_others > 0 and lost_on_others == 0,
        "shared store: no user lost the cart when a server crashed": results["sqlite"]["lost"] == 0,
        "stateless tokens: no user lost the cart when a server crashed": results["stateless"]["lost"] == 0,
        "the balancer retried refused connections: at most the requests in flight at the crash failed":
            all(f <= workers for f in failed.values()),
        "shared store outage: every stateful user was affected, on every server":
            outage_sqlite == n and outage_servers == all_servers,
        "shared store outage: no stateless user was affected": outage_stateless == 0,
        "after the outage the stateful carts were back (unavailable, not lost)": carts_back == n,
    }
    stateless_isolated = results["stateless"]["lost"] == 0 and failed["stateless"] <= workers
    seed_wording_right = lost_on_others > 0
    if not stateless_isolated:
        verdict = "does not hold"
    elif seed_wording_right and lost_on_crashed > 0:
        verdict = "holds"
    else:
        verdict = "holds with nuance"
    reading = (
        f"When {crashed} crashed, {lost_on_crashed} of {on_crashed} users whose in-memory session lived on it "
        f"lost their cart, and {lost_on_others} of {on_others} whose session lived on another server did: "
        f"a crash loses the sessions stored on the crashed server, not those on others. "
        f"With the shared store {results['sqlite']['lost']} users lost a cart, with tokens "
        f"{results['stateless']['lost']}; {sum(failed.values())} of {sum(r['requests'] for r in results.values())} "
        f"requests failed outright (only a request in flight on the dying server can). "
        f"But when the shared store went down, {outage_sqlite} of {n} stateful users got errors from "
        f"{len(outage_servers)} servers, while {outage_stateless} of {n} token users noticed."
    )
    return record(Evidence(row=ROW, measurements=measurements, checks=checks, verdict=verdict, reading=reading,
                           seconds=time.perf_counter() - began,
                           extra={"by_home": {d: r["by_home"] for d, r in results.items()},
                                  "failures": {d: r["failures"] for d, r in results.items()},
                                  "crashed": crashed, "workers": workers}))


def plot(ev: Evidence, ax: Any = None) -> Any:
    """Share of users who lost their cart, by the server their login landed on, for each design;
    and, for the designs with a shared part, the share affected by the store outage."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 3.2))
    crashed = ev.extra["crashed"]
    homes = sorted({h for table in ev.extra["by_home"].values() for h in table})
    groups = [f"users on {h}" + (" (crashed)" if h == crashed else "") for h in homes] + ["store outage: all users"]
    n = ev.measurements["users per design"]
    outage = {"memory": None, "sqlite": ev.measurements["store outage: stateful users affected"],
              "stateless": ev.measurements["store outage: stateless users affected"]}
    width = 0.26
    for i, (design, label) in enumerate(DESIGNS.items()):
        table = ev.extra["by_home"][design]
        shares = [100 * table[h][1] / table[h][0] if table.get(h, (0, 0))[0] else 0.0 for h in homes]
        shares.append(float("nan") if outage[design] is None else 100 * outage[design] / n)
        xs = [g + (i - 1) * width for g in range(len(groups))]
        bars = ax.bar(xs, shares, width, label=label)
        ax.bar_label(bars, labels=["" if s != s else f"{s:.0f}" for s in shares], fontsize=7, padding=1)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel("users without their cart (%)")
    ax.set_ylim(0, 135)
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(f"{crashed} crashes, then the shared store goes down", fontsize=10)
    ax.text(len(groups) - 1 - width, 2, "no store", ha="center", fontsize=7, rotation=90)
    ax.legend(fontsize=7, loc="upper center", ncol=3, frameon=False)
    ax.figure.tight_layout()
    return ax.figure
