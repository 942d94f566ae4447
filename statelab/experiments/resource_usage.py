"""Resource usage: where each design keeps a user's state, and what that costs in memory, storage and bytes.

The seed says a stateful server "requires more resources for session state management" and
a stateless one "utilizes resources efficiently". Its own benefit 4b says the opposite about
one resource: keeping state on the server is efficient because it is not re-sent with every
request. State costs something wherever it lives, so this experiment follows it through the four
designs of :data:`~statelab.experiments.DESIGNS`:

* **server memory** (``tracemalloc``, after garbage collection) of a one-server cluster of each
  design as users pile up: a few hundred log in over real HTTP, then thousands more are logged
  in directly (what ``/login`` and ``POST /cart`` do, minus the network: a session in the store,
  a token from the keyring, a row in the cart table), each with a three-line cart;
* **shared storage**: the bytes the shared SQLite files (session store, cart table) grow by, for
  the designs that keep state there;
* **bytes on the wire** as a cart grows, one ``POST /cart`` at a time over HTTP: the sid cookie
  and an identity-only token stay the same size, while a token that carries the cart grows
  with it and outgrows what a browser keeps in one cookie (4096 bytes for name and value).
"""

from __future__ import annotations

import gc
import sqlite3
import threading
import time
import tracemalloc
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..rawhttp import WireUser, build_request, wire_exchange
from ..shop.app import MAX_CART_LINES
from ..topology.cluster import Cluster
from . import DESIGNS, Evidence, Judgement, judged, progress, record

ROW = "resource_usage"
MEMORY, STORE, IN_TOKEN, IN_DB = DESIGNS  # the four designs, in the collection's order
#: RFC 6265 asks browsers to keep at least 4096 bytes per cookie (name and value); the major ones keep no more.
COOKIE_LIMIT = 4096
#: Logins before tracing starts, so that one-off caches of the first requests do not count as state.
WARM_UP = 20
CART = [{"item": "ddia", "qty": 1}, {"item": "sicp", "qty": 2}, {"item": "tcp-ip", "qty": 1}]
TTL = 1800

C_MEM_GROWS = "session + memory: the server's memory grows with every session"
C_HEALTH = "session + memory: the server counts every session it holds (GET /health)"
C_STORE_MOVES = "session + shared store: the server's memory stays flat; the sessions fill the shared store instead"
C_TOKEN_FLAT = "token + cart in token: the server holds nothing per user"
C_DB_FLAT = "token + cart in db: the server's memory stays flat"
C_DB_TABLE = "token + cart in db: the carts fill the shared table instead"
C_SID_FLAT = "the sid cookie stays the same size whatever the cart holds"
C_DB_TOKEN_FLAT = "with the cart in db, the token stays the same size whatever the cart holds"
C_TOKEN_COOKIE = "a token carrying the cart outgrows a browser's 4096-byte cookie"
C_TOKEN_BYTES = "every cart-in-token request carries more bytes than the session one"


def traced_bytes() -> int:
    """Bytes allocated since tracing began and still alive, after a full garbage collection.

    Waits (briefly) for the servers' request threads to finish first: a thread still closing
    its connection holds memory that is not anybody's session.
    """
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline and any(
            t.name.endswith("(process_request_thread)") for t in threading.enumerate()):
        time.sleep(0.005)
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def cookie_bytes(name: str, value: str) -> int:
    """What a browser counts against its per-cookie limit: the name and the value."""
    return len(name.encode()) + 1 + len(value.encode())


def file_bytes(path: str | Path | None) -> int:
    """Bytes of data an SQLite file holds, its write-ahead log included (pages in use x page size; 0 for none).

    Not the files' sizes on disk: the log keeps whole 4 KiB pages of every commit until a checkpoint,
    so its size says how much was written lately, not how much is kept.
    """
    if path is None or not Path(path).exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (pages,), (size,) = db.execute("PRAGMA page_count").fetchone(), db.execute("PRAGMA page_size").fetchone()
        (free,) = db.execute("PRAGMA freelist_count").fetchone()
    finally:
        db.close()
    return (pages - free) * size


def log_in_directly(cluster: Cluster, user: str) -> None:
    """What ``/login`` and a few ``POST /cart`` do for ``user`` on ``cluster``, without the network."""
    server = cluster.servers[0]
    if server.mode == "stateful":
        server.store.create({"user": user, "cart": list(CART)}, TTL)  # type: ignore[union-attr]
        return
    token = cluster.keyring.issue(user, TTL, **({} if cluster.carts is not None else {"cart": list(CART)}))
    del token  # the client keeps it: nothing of it stays on the server
    if cluster.carts is not None:
        cluster.carts.update(user, lambda _: list(CART))


def _storage(cluster: Cluster) -> str | None:
    """The shared SQLite file where this design keeps state (None when it keeps none there)."""
    if cluster.carts is not None:
        return getattr(cluster.carts, "path", None)
    return getattr(cluster.store, "path", None)


def _grow(cluster: Cluster, http_users: int, targets: Iterable[int]) -> dict[str, list[int]]:
    """Log users in up to each of ``targets``; return users, server bytes held and shared-file bytes at each."""
    out = {"users": [0], "held": [0], "stored": [0]}
    base, base_file = traced_bytes(), file_bytes(_storage(cluster))
    n = 0
    for target in targets:
        while n < target:
            name = f"user-{n:05d}"
            if n < http_users:
                user = WireUser(cluster.servers[0].url)
                user.login(name)
                user.add("ddia")
            else:
                log_in_directly(cluster, name)
            n += 1
        out["users"].append(n)
        out["held"].append(traced_bytes() - base)
        out["stored"].append(file_bytes(_storage(cluster)) - base_file)
    return out


def _memory(design: str, http_users: int, targets: Iterable[int]) -> tuple[dict[str, list[int]], int]:
    """A one-server cluster of ``design``: trace its memory while users log in; also its session count."""
    with Cluster(1, **DESIGNS[design]) as cluster:
        url = cluster.servers[0].url
        for i in range(WARM_UP):  # caches and free lists the first requests fill are not state
            WireUser(url).login(f"warm-up-{i}")
        if cluster.servers[0].store is not None:
            cluster.servers[0].store.clear()
        started = not tracemalloc.is_tracing()  # never stop a trace the learner started
        gc.collect()
        gc.freeze()  # what exists now was allocated before tracing: the collections below need not scan it
        if started:
            tracemalloc.start()
        try:
            grown = _grow(cluster, http_users, targets)
        finally:
            if started:
                tracemalloc.stop()
            gc.unfreeze()
        health = wire_exchange(url, build_request("GET", "127.0.0.1", int(url.rsplit(":", 1)[1]), "/health")).json()
    gc.collect()
    return grown, health["sessions"]


def _cart_growth(url: str, lines: int) -> dict[str, list[Any]]:
    """Add one cart line at a time over HTTP; record request/response bytes and the credential's size."""
    user = WireUser(url)
    user.login("alice")
    out: dict[str, list[Any]] = {"lines": [], "request": [], "response": [], "credential": []}
    for i in range(lines):
        ex = user.add(f"book-{i:03d}", 1)
        out["lines"].append(len(ex.json()["cart"]))
        out["request"].append(ex.request_bytes)
        out["response"].append(ex.response_bytes)
        out["credential"].append(cookie_bytes(*user.credential))
    out["cookie name"] = [user.credential[0]]
    return out


def lines_to_outgrow(keyring: Any, limit: int = COOKIE_LIMIT) -> int | None:
    """The fewest ``book-NNN`` cart lines whose token, kept in a cookie, exceeds ``limit`` bytes."""
    cart: list[dict[str, Any]] = []
    for i in range(MAX_CART_LINES):
        cart.append({"item": f"book-{i:03d}", "qty": 1})
        if cookie_bytes("token", keyring.issue("alice", 900, cart=cart)) > limit:
            return len(cart)
    return None


def run(*, quick: bool = False, sessions: tuple[int, ...] | None = None, http_users: int | None = None,
        max_lines: int | None = None) -> Evidence:
    """Measure server memory and shared storage against users, and bytes per request against cart size.

    ``sessions``: the user counts to measure at; ``http_users``: how many of them log in over
    HTTP; ``max_lines``: cart lines to grow to over HTTP (default: a little past the size at
    which a token carrying the cart outgrows a cookie, at most the app's limit).
    """
    sessions = tuple(sorted(set(sessions or ((150, 400) if quick else (300, 800))) - {0}))
    if not sessions or not all(isinstance(n, int) and 0 < n <= 200_000 for n in sessions):
        raise ValueError("sessions must be whole numbers from 1 to 200000, e.g. (1000, 5000)")
    if max_lines is not None and not 1 <= max_lines <= MAX_CART_LINES:
        raise ValueError(f"max_lines must be from 1 to {MAX_CART_LINES} (the app's cart limit)")
    http_users = min(http_users if http_users is not None else (10 if quick else 30), sessions[-1])
    sizes = sorted({http_users, *sessions} - {0})
    began = time.perf_counter()
    bar = iter(progress(list(DESIGNS) + ["cart"], "measuring"))
    grown, health = {}, {}
    for design in DESIGNS:
        next(bar)
        grown[design], health[design] = _memory(design, http_users, sizes)

    growth: dict[str, dict[str, list[Any]]] = {}
    next(bar)
    with Cluster(1, **DESIGNS[IN_TOKEN]) as probe:
        if max_lines is None:  # where the token outgrows a cookie, found with the server's own keyring
            limit = lines_to_outgrow(probe.keyring)
            margin = 3 if quick else max(limit // 8, 3) if limit else 0
            max_lines = MAX_CART_LINES if limit is None else min(MAX_CART_LINES, limit + margin)
    clusters = [Cluster(1, **options) for options in DESIGNS.values()]
    try:
        for design, cluster in zip(DESIGNS, clusters, strict=True):
            growth[design] = _cart_growth(cluster.servers[0].url, max_lines)
    finally:
        for cluster in clusters:
            cluster.stop()
    for _ in bar:  # finish the progress bar
        pass
    return _evidence(grown, health, growth, http_users, time.perf_counter() - began)


#: Which checks judge each claim (see :class:`~statelab.experiments.Judgement`); ``_evidence()`` computes those checks
#: and adds to each claim the sentence of what was measured.
CLAIMS = {
    "stateful": Judgement(supports=(C_MEM_GROWS,), qualifies=(C_STORE_MOVES,)),
    "stateless": Judgement(supports=(C_TOKEN_FLAT, C_DB_FLAT), qualifies=(C_TOKEN_BYTES, C_TOKEN_COOKIE, C_DB_TABLE)),
    "4b": Judgement(supports=(C_SID_FLAT, C_TOKEN_BYTES), qualifies=(C_DB_TOKEN_FLAT,)),
}


def _evidence(grown: dict[str, dict[str, list[int]]], health: dict[str, int],
              growth: dict[str, dict[str, list[Any]]], http_users: int, seconds: float) -> Evidence:
    users = grown[MEMORY]["users"]
    held = {d: grown[d]["held"] for d in DESIGNS}
    stored = {d: grown[d]["stored"] for d in DESIGNS}
    n = users[-1]
    # the slope over the later (direct) logins, past the HTTP ones (whose threads leave some caches behind)
    slope = {d: ((held[d][-1] - held[d][1]) / (users[-1] - users[1]) if len(users) > 2 else held[d][-1] / n)
             for d in DESIGNS}
    per_session = slope[MEMORY]
    per_stored = {d: stored[d][-1] / n for d in (STORE, IN_DB)}
    lines = growth[IN_TOKEN]["lines"]
    token = growth[IN_TOKEN]["credential"]
    too_big = next((k for k, size in zip(lines, token, strict=True) if size > COOKIE_LIMIT), None)
    extra_per_request = [a - b for a, b in zip(growth[IN_TOKEN]["request"], growth[MEMORY]["request"], strict=True)]
    small = min(len(CART), len(extra_per_request))  # a typical cart: a few items
    extra_small_cart = extra_per_request[small - 1]

    def flat(design: str) -> bool:
        """The server keeps (almost) nothing per user: under a tenth of what a memory session costs."""
        return abs(slope[design]) < 0.1 * per_session

    checks = {
        C_MEM_GROWS: per_session > 100 and held[MEMORY][-1] > 0.5 * per_session * n,
        C_HEALTH: health[MEMORY] == n,
        C_STORE_MOVES: flat(STORE) and per_stored[STORE] > 50,
        C_TOKEN_FLAT: flat(IN_TOKEN) and stored[IN_TOKEN][-1] == 0,
        C_DB_FLAT: flat(IN_DB),
        C_DB_TABLE: per_stored[IN_DB] > 20,
        C_SID_FLAT: len(set(growth[MEMORY]["credential"])) == 1 and len(set(growth[MEMORY]["request"])) == 1,
        C_DB_TOKEN_FLAT: len(set(growth[IN_DB]["credential"])) == 1 and len(set(growth[IN_DB]["request"])) == 1,
        C_TOKEN_COOKIE: too_big is not None,
        C_TOKEN_BYTES: min(extra_per_request) > 0,
    }
    sid = growth[MEMORY]["credential"][0]
    db_token = growth[IN_DB]["credential"][0]
    top = lines[-1]
    claims = judged(CLAIMS, {
        "stateful": (f"{n:,} sessions held {held[MEMORY][-1] / 1e6:.1f} MB of the server's memory "
                     f"({per_session:.0f} bytes each: a million would take about "
                     f"{per_session * 1e6 / 2**30:.1f} GiB). With a shared store the server's memory moved by "
                     f"{held[STORE][-1] / 1e3:+.0f} kB and the store grew {per_stored[STORE]:.0f} bytes a "
                     f"session: the resources move to the store, they do not vanish."),
        "stateless": (f"Token servers held nothing per user (memory moved by {held[IN_TOKEN][-1] / 1e3:+.0f} and "
                      f"{held[IN_DB][-1] / 1e3:+.0f} kB for {n:,} users), but the state went somewhere: with the "
                      f"cart in the token, every request re-sent it ({extra_small_cart} more bytes than a sid "
                      f"with a {small}-line cart"
                      + (f"; past {too_big} lines the token no longer fits in a cookie)" if too_big is not None
                         else ")")
                      + f"; with the cart in db, the shared table grew {per_stored[IN_DB]:.0f} bytes a user."),
        "4b": (f"The sid cookie stayed {sid} bytes from 1 to {top} cart lines while a token carrying "
               f"the cart grew to {token[-1]:,}; keeping state off the wire needs no session, though: a "
               f"token with the cart in db stayed {db_token} bytes."),
    })
    reading = (
        f"{n:,} users with a {len(CART)}-line cart: the session + memory server held {held[MEMORY][-1] / 1e6:.1f} MB "
        f"({per_session:.0f} bytes a session); the servers of session + shared store, token + cart in token and "
        f"token + cart in db moved by {held[STORE][-1] / 1e3:+.0f}, {held[IN_TOKEN][-1] / 1e3:+.0f} and "
        f"{held[IN_DB][-1] / 1e3:+.0f} kB, while the shared session store grew {stored[STORE][-1] / 1e3:.0f} kB and "
        f"the shared cart table {stored[IN_DB][-1] / 1e3:.0f} kB. On the wire, the sid cookie stayed {sid} bytes "
        f"and the identity-only token {db_token}, while the token carrying the cart grew to {token[-1]:,} bytes at "
        f"{top} lines" + (f" (over the cookie limit from {too_big})." if too_big is not None else ".")
    )
    measurements = {
        "users": users,
        **{f"server bytes held, {d}": held[d] for d in DESIGNS},
        **{f"shared file bytes, {d}": stored[d] for d in (STORE, IN_DB)},
        "bytes per session in server memory": per_session,
        "shared store bytes per session": per_stored[STORE], "cart table bytes per user": per_stored[IN_DB],
        "HTTP logins": http_users, "sessions seen by GET /health": health[MEMORY],
        "cart lines when the token outgrows a cookie": too_big,
        "sid cookie bytes": sid, "identity-only token cookie bytes": db_token,
        "extra request bytes, token + cart in token (small cart)": extra_small_cart,
    }
    return record(Evidence(row=ROW, measurements=measurements, checks=checks, claims=claims, reading=reading,
                           seconds=seconds, extra={"cart": growth, "held": held, "stored": stored, "users": users,
                                                   "key_numbers": {
                                                       "bytes a session takes in server memory": f"{per_session:.0f}",
                                                       "cart lines until a cart-carrying token outgrows a cookie":
                                                           too_big if too_big is not None else "more than measured",
                                                       "identity-only token (cart in db), bytes": db_token}}))
