"""Choosing: the four designs on the same axes, and the seed's two definitions judged against them.

A design is two choices (see ``statelab.experiments.DESIGNS``): *who you are* (a session id the
server looks up, or a token the server checks) and *where the data lives* (in the session, in the
token, or in a shared database). Production's usual answers are "session + shared store" for
sessions and "token + cart in db" for a stateless app tier: both keep the data in a shared store and
nothing in any one app server's memory. Each design gets one cluster of three servers and the same
axes:

* carts lost when ``server-1`` crashes; share of reads that find the cart under round robin;
* a stolen credential replayed after the victim logs out;
* whether the cart follows the user to a second device (a second client logging in as them);
* the bytes of credential every request carries, with one line in the cart and with six;
* the median ``GET /cart`` and the trips it makes to a shared store.

The verdicts are on the seed's definitions (``statelab.table.CHOOSING``): the stateful one says
"the server keeps track of the client's data", the stateless one says stateless designs are more
scalable and fault tolerant *because* they keep no client state on the server.
"""

from __future__ import annotations

import html
import statistics
import threading
import time
from typing import Any

from ..client import Client
from ..shop.app import CATALOG
from ..topology.cluster import Cluster
from . import DESIGNS, Evidence, Judgement, check_size, judged, progress, record

ROW = "choosing"
CRASHED = 1  # server-1 crashes
SESSIONS = ("session + memory", "session + shared store")
TOKENS = ("token + cart in token", "token + cart in db")
SHARED = ("session + shared store", "token + cart in db")   # the data lives in one store every server reads
TRIPS = ("create", "get", "update", "delete")                 # the calls that go to the store
CONTROL = "both session designs: logout stopped a stolen session id at once"

C_MEM_CRASH = "session + memory: a crash lost the carts kept on the dead server"
C_STORE_SURVIVES = "session + shared store: no cart lost, every read found its cart under round robin"
C_TOKEN_SURVIVES = "token + cart in token: no cart lost, every read found its cart under round robin"
C_DB_SURVIVES = "token + cart in db: no cart lost, every read found its cart under round robin"
C_DB_FOLLOWS = "token + cart in db: the cart followed the user to a second device"
C_SHARED_TRIPS = "every cart read of the shared-store designs went to the shared store"


class TripCounter:
    """Counts the calls a cluster's servers make to its shared store: each is one trip on a request's path.

    ``TripCounter(cluster.store)`` or ``TripCounter(cluster.carts)``: it wraps the store's data calls
    (``create``, ``get``, ``update``, ``delete``, whichever it has) on that one object, so the servers,
    which already hold the object, are counted without any other change; the store behaves the same.
    A call the store makes to itself (``get`` that refreshes the idle timer through ``update``) is
    part of the same trip and not counted again.
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self.trips = 0
        self._lock = threading.Lock()
        self._inside = threading.local()
        for name in TRIPS:
            method = getattr(store, name, None)
            if callable(method):
                setattr(store, name, self._counted(method))

    def _counted(self, method: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            if getattr(self._inside, "busy", False):   # the store calling itself: same trip
                return method(*args, **kwargs)
            with self._lock:
                self.trips += 1
            self._inside.busy = True
            try:
                return method(*args, **kwargs)
            finally:
                self._inside.busy = False

        return counted


def _has_book(ex: Any) -> bool:
    return ex.ok and isinstance(ex.body, dict) and any(line.get("item") == "book" for line in ex.body.get("cart", []))


def _credential_bytes(client: Client) -> int:
    """Bytes of credential the client sends with every request: its cookies and its bearer token."""
    cookies = sum(len(name) + 1 + len(value) for name, value in client.cookies.items())
    return cookies + (len("Bearer ") + len(client.token) if client.token else 0)


def _login(url: str, user: str, design: str) -> Client:
    client = Client(url)
    if not (client.login(user).ok and client.add_to_cart("book").ok):
        raise RuntimeError(f"could not set up {user} on {design}: {client.last.summary()}")
    return client


def _measure(design: str, cluster: Cluster, store: TripCounter | None, users: int, reads: int,
             timed: int, replays: int) -> dict[str, Any]:
    """Every axis, on one design's cluster (which this call crashes at the end)."""
    crowd = [_login(cluster.url, f"user{i}", design) for i in range(users)]
    out: dict[str, Any] = {}

    # 1. round robin, no affinity: does each read find the cart?
    own = cluster.strategy
    cluster.strategy = "round_robin"
    out["found"] = sum(_has_book(c.cart()) for c in crowd for _ in range(reads)) / (users * reads)
    cluster.strategy = own

    # 2. one user's GET /cart: the median time, and the trips to a shared store it makes
    before = store.trips if store is not None else 0
    out["p50_ms"] = statistics.median(crowd[0].cart().ms for _ in range(timed))
    out["trips"] = (store.trips - before) / timed if store is not None else 0.0

    # 3. the credential every request carries: one line in the cart, then every book of the catalog
    shopper = crowd[-1]
    out["credential_1"] = _credential_bytes(shopper)
    for book in CATALOG:
        shopper.add_to_cart(book["item"])
    full = shopper.cart()
    out["lines"] = len(full.body.get("cart", [])) if full.ok and isinstance(full.body, dict) else 0
    out["credential_n"] = _credential_bytes(shopper)

    # 4. a second device: another client logs in as user0. Does the cart follow?
    second = Client(cluster.url)
    second.login("user0")
    out["follows"] = _has_book(second.cart())

    # 5. a thief copies a victim's credential (cookies or token); the victim logs out
    victim, thief = Client(cluster.url), Client(cluster.url)
    victim.login("victim")
    for name, value in victim.cookies.items():
        thief.set_cookie(name, value)
    thief.token = victim.token
    out["stolen_worked"] = thief.me().ok
    victim.logout()
    out["replays_accepted"] = sum(thief.me().ok for _ in range(replays))

    # 6. server-1 crashes: whose cart is gone?
    cluster.kill(CRASHED)
    out["lost"] = sum(not _has_book(c.cart()) for c in crowd)
    for c in [*crowd, second, victim, thief]:
        c.close()
    return out


def run(*, quick: bool = False, users: int | None = None, reads: int | None = None,
        timed: int | None = None, replays: int = 3) -> Evidence:
    """Measure the four designs on the same axes, three servers each.

    ``users`` shoppers per design (default 12, quick 6), each with a book in the cart; ``reads``
    cart reads per user under round robin (default 3, quick 2); ``timed`` requests for the
    median latency (default 30, quick 12); ``replays`` requests a thief makes after logout.
    """
    users = users if users is not None else (6 if quick else 12)
    reads = reads if reads is not None else (2 if quick else 3)
    timed = timed if timed is not None else (12 if quick else 30)
    for name, value, low, high in (("users", users, 3, 300), ("reads", reads, 1, 20), ("timed", timed, 3, 500),
                                   ("replays", replays, 1, 50)):
        check_size(name, value, low, high)
    began = time.perf_counter()
    results = {design: _one_design(design, users, reads, timed, replays)
               for design in progress(DESIGNS, "four designs")}
    return record(_judge(results, users, replays, quick, time.perf_counter() - began))


def _one_design(design: str, users: int, reads: int, timed: int, replays: int) -> dict[str, Any]:
    """One design's cluster, exactly as ``DESIGNS`` builds it, its shared store counted, measured and stopped."""
    # memory sessions only work with affinity: pin each user (the balancer's part in that design)
    balancer = "sticky" if design == "session + memory" else "round_robin"
    with Cluster(3, balancer=balancer, **DESIGNS[design]) as cluster:
        shared = cluster.carts if getattr(cluster, "carts", None) is not None else cluster.store
        counter = TripCounter(shared) if design in SHARED else None
        return _measure(design, cluster, counter, users, reads, timed, replays)


#: Which checks judge each claim (see :class:`~statelab.experiments.Judgement`); ``_judge()`` computes those checks
#: and adds to each claim the sentence of what was measured.
CLAIMS = {
    "stateful": Judgement(supports=(CONTROL,), qualifies=(C_MEM_CRASH, C_DB_FOLLOWS)),
    "stateless": Judgement(supports=(C_TOKEN_SURVIVES, C_DB_SURVIVES), qualifies=(C_STORE_SURVIVES, C_SHARED_TRIPS)),
}


def _judge(r: dict[str, dict[str, Any]], users: int, replays: int, quick: bool, seconds: float) -> Evidence:
    m: dict[str, Any] = {
        "users": users,
        "replays": replays,
        "lines": r["token + cart in token"]["lines"],
        "lost_on_crash": {d: r[d]["lost"] for d in DESIGNS},
        "found_share_round_robin": {d: round(r[d]["found"], 3) for d in DESIGNS},
        "replays_accepted_after_logout": {d: r[d]["replays_accepted"] for d in DESIGNS},
        "cart_follows_to_second_device": {d: r[d]["follows"] for d in DESIGNS},
        "credential_bytes_1_line": {d: r[d]["credential_1"] for d in DESIGNS},
        "credential_bytes_n_lines": {d: r[d]["credential_n"] for d in DESIGNS},
        "p50_ms": {d: round(r[d]["p50_ms"], 2) for d in DESIGNS},
        "store_trips_per_request": {d: round(r[d]["trips"], 2) for d in DESIGNS},
    }
    lost, found = m["lost_on_crash"], m["found_share_round_robin"]
    accepted, follows = m["replays_accepted_after_logout"], m["cart_follows_to_second_device"]
    size1, sizen, trips = m["credential_bytes_1_line"], m["credential_bytes_n_lines"], m["store_trips_per_request"]

    def survives(d: str) -> bool:
        return lost[d] == 0 and found[d] == 1.0

    checks = {
        C_MEM_CRASH: 0 < lost["session + memory"] < users,
        "session + memory: without affinity, reads missed their cart": found["session + memory"] < 1.0,
        C_STORE_SURVIVES: survives("session + shared store"),
        C_TOKEN_SURVIVES: survives("token + cart in token"),
        C_DB_SURVIVES: survives("token + cart in db"),
        CONTROL: all(r[d]["stolen_worked"] and accepted[d] == 0 for d in SESSIONS),
        "both token designs: a stolen token still worked after logout":
            all(r[d]["stolen_worked"] and accepted[d] == replays for d in TOKENS),
        C_DB_FOLLOWS: follows["token + cart in db"],
        "token + cart in db: the token stayed the same size as the cart grew":
            sizen["token + cart in db"] == size1["token + cart in db"],
        "token + cart in token: the token grew with the cart": sizen["token + cart in token"] > size1[
            "token + cart in token"],
        C_SHARED_TRIPS: all(trips[d] >= 1 for d in SHARED),
    }
    claims = judged(CLAIMS, {
        "stateful": _corrected_stateful(m, checks[CONTROL]),
        "stateless": _corrected_stateless(m, checks[C_STORE_SURVIVES]),
    })
    p50 = m["p50_ms"]
    reading = (
        f"Carts lost when server-1 crashed: {_per_design(lost, f' of {users}')}. Reads that found the cart under round"
        f" robin: {_per_design({d: f'{v:.0%}' for d, v in found.items()})}. A stolen credential replayed"
        f" {replays} times after logout was accepted {_per_design(accepted)} times. The cart followed the user to a"
        f" second device: {_per_design({d: 'yes' if v else 'no' for d, v in follows.items()})}. Credential bytes per"
        f" request, one line -> {m['lines']} lines: {_per_design({d: f'{size1[d]} -> {sizen[d]}' for d in DESIGNS})}."
        f" Median GET /cart: {_per_design({d: f'{v:.1f} ms' for d, v in p50.items()})}. Trips to the shared store"
        f" per request: {_per_design({d: f'{trips[d]:.1f}' for d in SHARED})}."
    )
    return Evidence(row=ROW, measurements=m, checks=checks, claims=claims, reading=reading, seconds=seconds,
                    extra={"quick": quick, "designs": list(DESIGNS)})


def _per_design(values: dict[str, Any], unit: str = "") -> str:
    return ", ".join(f"{d} {v}{unit}" for d, v in values.items())


def _corrected_stateful(m: dict[str, Any], control: bool) -> str:
    """The stateful half's sentence, from the numbers; ``control``: logout stopped a stolen session id."""
    lost, users, replays = m["lost_on_crash"], m["users"], m["replays"]
    follows = m["cart_follows_to_second_device"]["token + cart in db"]
    sessions = " and ".join(f"{m['replays_accepted_after_logout'][d]} of {replays}" for d in SESSIONS)
    tokens = " and ".join(f"{m['replays_accepted_after_logout'][d]} of {replays}" for d in TOKENS)
    login = ("What a session design has that a token design lacks is control of the login" if control else
             "Here even the session designs did not keep control of the login")
    return (f"{login}: after logout a stolen session id was accepted {sessions} times in the two session designs,"
            f" a stolen token {tokens} times in the two token designs. Keeping the client's data is not what sets a"
            f" session design apart: token + cart in db kept the cart in a server-side table (it"
            f" {'followed' if follows else 'did not follow'} the user to a second device), and where the session"
            f" lives decides what a crash costs: {lost['session + memory']} of {users} carts lost in server memory,"
            f" {lost['session + shared store']} of {users} in a shared store.")


def _corrected_stateless(m: dict[str, Any], shared_survives: bool) -> str:
    """The stateless half's sentence, from the numbers; ``shared_survives``: session + shared store lost nothing."""
    lost, found, users = m["lost_on_crash"], m["found_share_round_robin"], m["users"]
    trips = m["store_trips_per_request"]
    same = ("but session + shared store did as well" if shared_survives else "and session + shared store did not")
    cause = (" Crash survival and scaling without affinity came from keeping nothing in one app server's memory,"
             " not from keeping no client state." if shared_survives else "")
    return (f"The token designs lost {lost['token + cart in token']} of {users} (cart in token) and"
            f" {lost['token + cart in db']} of {users} (cart in db) carts in a crash and found"
            f" {found['token + cart in token']:.0%} and {found['token + cart in db']:.0%} of carts under round robin,"
            f" {same} ({lost['session + shared store']} lost, {found['session + shared store']:.0%} found).{cause}"
            f" The shared-store designs keep client state on the server side: {trips['token + cart in db']:.1f}"
            f" (token + cart in db) and {trips['session + shared store']:.1f} (session + shared store) trips to the"
            " store per request.")


# --------------------------------------------------------------------------- showing it

def table_html(ev: Evidence) -> str:
    """The four designs side by side on every axis, as an HTML table (words, never colour alone)."""
    m = ev.measurements
    users, replays = m["users"], m["replays"]

    def yes(ok: bool) -> str:
        return "&#10003; <b>yes</b>" if ok else "&#10007; no"

    rows = [
        ("carts lost when server-1 crashes", lambda d: f"{m['lost_on_crash'][d]} of {users}"),
        ("reads that find the cart under round robin", lambda d: f"{m['found_share_round_robin'][d]:.0%}"),
        ("logout stops a stolen credential at once",
         lambda d: f"{yes(m['replays_accepted_after_logout'][d] == 0)} "
                   f"({m['replays_accepted_after_logout'][d]} of {replays} replays accepted)"),
        ("the cart follows the user to a second device", lambda d: yes(m["cart_follows_to_second_device"][d])),
        (f"credential bytes per request, 1 line / {m['lines']} lines",
         lambda d: f"{m['credential_bytes_1_line'][d]} / {m['credential_bytes_n_lines'][d]}"),
        ("median GET /cart", lambda d: f"{m['p50_ms'][d]:.1f} ms"),
        ("trips to a shared store per request", lambda d: f"{m['store_trips_per_request'][d]:.1f}"),
    ]
    designs = list(m["lost_on_crash"])
    head = "".join(f"<th>{html.escape(d)}</th>" for d in designs)
    body = "".join(f"<tr><td style='text-align:left'>{html.escape(label)}</td>"
                   + "".join(f"<td>{fmt(d)}</td>" for d in designs) + "</tr>" for label, fmt in rows)
    return f"<table><thead><tr><th>axis</th>{head}</tr></thead><tbody>{body}</tbody></table>"
