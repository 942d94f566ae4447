"""Resource usage: server memory per session, and the bytes a token costs on every request.

The seed says a stateful server "requires more resources for session state management" and
a stateless one "utilizes resources efficiently". Its own benefit 4b says the opposite about
one resource: keeping state on the server is efficient because it is not re-sent with every
request. Both are resources, so this experiment measures both:

* **server memory** (``tracemalloc``, after garbage collection) of a stateful server as
  sessions pile up: a few hundred users log in over real HTTP, then thousands more are
  logged in directly through the server's own store (what its ``/login`` does, minus the
  network). The same for a stateless server: HTTP logins, then tokens issued directly with
  its own keyring. Stateful memory grows with users; stateless stays flat.
* **bytes on the wire** as the cart grows, one ``POST /cart`` at a time over HTTP: the sid
  cookie stays the same size, while the token carries the whole cart on every request, and
  outgrows what a browser keeps in one cookie (4096 bytes for name and value).
"""

from __future__ import annotations

import gc
import itertools
import threading
import time
import tracemalloc
from collections.abc import Iterable
from typing import Any

from ..rawhttp import build_request, wire_exchange
from ..service import HOST
from ..shop.app import MAX_CART_LINES
from ..shop.server import Server
from . import Evidence, progress, record
from .performance import WireUser

#: RFC 6265 asks browsers to keep at least 4096 bytes per cookie (name and value); the major ones keep no more.
COOKIE_LIMIT = 4096
#: Logins before tracing starts, so that one-off caches of the first requests do not count as sessions.
WARM_UP = 20
CART = [{"item": "ddia", "qty": 1}, {"item": "sicp", "qty": 2}, {"item": "tcp-ip", "qty": 1}]


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


def _grow_sessions(server: Server, http_users: int, targets: Iterable[int]) -> tuple[list[int], list[int]]:
    """Log users in on ``server`` up to each of ``targets``; return (users, bytes held) at each.

    The first ``http_users`` log in over HTTP; the rest directly: through the store for a
    stateful server, with its keyring for a stateless one (the token goes to the client).
    """
    users, held = [0], [0]
    base = traced_bytes()
    n = 0
    for target in targets:
        while n < target:
            name = f"user-{n:05d}"
            if n < http_users:
                WireUser(server.url, server.mode).login(name)
            elif server.mode == "stateful":
                server.store.create({"user": name, "cart": list(CART)}, 1800)  # type: ignore[union-attr]
            else:
                server.keyring.issue(name, 900, cart=list(CART))  # type: ignore[union-attr]
            n += 1
        users.append(n)
        held.append(traced_bytes() - base)
    return users, held


def _memory(mode: str, http_users: int, targets: Iterable[int]) -> tuple[list[int], list[int], int]:
    """Start a ``mode`` server, trace its memory while users log in; also its session count."""
    with Server(mode, name=f"{mode}-memory") as server:
        server.start()
        for i in range(WARM_UP):  # caches and free lists the first requests fill are not sessions
            WireUser(server.url, mode).login(f"warm-up-{i}")
        if server.store is not None:
            server.store.clear()
        started = not tracemalloc.is_tracing()  # never stop a trace the learner started
        if started:
            tracemalloc.start()
        try:
            users, held = _grow_sessions(server, http_users, targets)
        finally:
            if started:
                tracemalloc.stop()
        health = wire_exchange(server.url, build_request("GET", HOST, server.port, "/health")).json()
    gc.collect()
    return users, held, health["sessions"]


def _cart_growth(server: Server, lines: int) -> dict[str, list[int]]:
    """Add one cart line at a time over HTTP; record request/response bytes and credential size."""
    user = WireUser(server.url, server.mode)
    user.login("alice")
    name = server.cookie_name if server.mode == "stateful" else "token"  # a token kept in a cookie called "token"
    out: dict[str, list[int]] = {"lines": [], "request": [], "response": [], "credential": []}
    for i in range(lines):
        ex = user.add(f"book-{i:03d}", 1)
        out["lines"].append(len(ex.json()["cart"]))
        out["request"].append(ex.request_bytes)
        out["response"].append(ex.response_bytes)
        out["credential"].append(cookie_bytes(name, user.credential or ""))
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
    """Measure server memory against active sessions, and bytes per request against cart size.

    ``sessions``: the session counts to measure memory at; ``http_users``: how many of them log
    in over HTTP; ``max_lines``: cart lines to grow to over HTTP (default: a little past the
    size at which the token outgrows a cookie, at most the app's limit).
    """
    sessions = tuple(sorted(set(sessions or ((300, 1000) if quick else (1000, 2500, 5000))) - {0}))
    if not sessions or not all(isinstance(n, int) and 0 < n <= 200_000 for n in sessions):
        raise ValueError("sessions must be whole numbers from 1 to 200000, e.g. (1000, 5000)")
    if max_lines is not None and not 1 <= max_lines <= MAX_CART_LINES:
        raise ValueError(f"max_lines must be from 1 to {MAX_CART_LINES} (the app's cart limit)")
    http_users = min(http_users if http_users is not None else (30 if quick else 200), sessions[-1])
    sizes = sorted({http_users, *sessions} - {0})
    began = time.perf_counter()
    bar = iter(progress([(m, s) for m in ("stateful", "stateless") for s in sizes] + [("cart", 0)], "measuring"))
    memory, health = {}, {}
    for mode in ("stateful", "stateless"):
        users, held, health[mode] = _memory(mode, http_users, (s for _, s in itertools.islice(bar, len(sizes))))
        memory[mode] = (users, held)

    growth: dict[str, dict[str, list[int]]] = {}
    next(bar, None)
    with Server("stateful", name="stateful-cart") as sf, Server("stateless", name="stateless-cart") as st:
        sf.start()
        st.start()
        if max_lines is None:  # where the token outgrows a cookie, found with the server's own keyring
            limit = lines_to_outgrow(st.keyring)
            margin = 3 if quick else max(limit // 8, 3) if limit else 0
            max_lines = MAX_CART_LINES if limit is None else min(MAX_CART_LINES, limit + margin)
        growth["stateful"] = _cart_growth(sf, max_lines)
        growth["stateless"] = _cart_growth(st, max_lines)
    for _ in bar:  # finish the progress bar
        pass
    return _evidence(memory, health, growth, http_users, time.perf_counter() - began)


def _evidence(memory: dict[str, tuple[list[int], list[int]]], health: dict[str, int],
              growth: dict[str, dict[str, list[int]]], http_users: int, seconds: float) -> Evidence:
    users, sf_bytes = memory["stateful"]
    _, sl_bytes = memory["stateless"]
    # the slope over the later (direct) logins, past the HTTP ones; with one size, the average
    per_session = ((sf_bytes[-1] - sf_bytes[1]) / (users[-1] - users[1]) if len(users) > 2
                   else sf_bytes[-1] / users[-1])
    per_http_session = sf_bytes[1] / max(users[1], 1)
    per_stateless_user = sl_bytes[-1] / users[-1]
    lines = growth["stateless"]["lines"]
    token = growth["stateless"]["credential"]
    too_big = next((n for n, size in zip(lines, token, strict=True) if size > COOKIE_LIMIT), None)
    extra_per_request = [a - b for a, b in zip(growth["stateless"]["request"], growth["stateful"]["request"],
                                               strict=True)]
    small = min(len(CART), len(extra_per_request))  # a typical cart: a few items
    extra_small_cart = extra_per_request[small - 1]
    checks = {
        "a stateful server's memory grows with every session":
            per_session > 100 and sf_bytes[-1] > 0.5 * per_session * users[-1],
        "a stateless server's memory stays flat as users log in":
            abs(sl_bytes[-1]) < 0.1 * sf_bytes[-1],
        "the server counts every session it holds (GET /health)": health["stateful"] == users[-1],
        "the sid cookie stays the same size whatever the cart holds":
            len(set(growth["stateful"]["credential"])) == 1 and len(set(growth["stateful"]["request"])) == 1,
        "a token carrying the cart outgrows a browser's 4096-byte cookie": too_big is not None,
        "every stateless request carries more bytes than the stateful one": min(extra_per_request) > 0,
    }
    holds = [checks["a stateful server's memory grows with every session"],
             checks["a stateless server's memory stays flat as users log in"]]
    nuance = [checks["every stateless request carries more bytes than the stateful one"],
              checks["a token carrying the cart outgrows a browser's 4096-byte cookie"]]
    verdict = ("does not hold" if not any(holds) else
               "holds" if all(holds) and not any(nuance) else "holds with nuance")
    break_even = per_session / extra_small_cart if extra_small_cart > 0 else float("inf")
    reading = (
        f"{users[-1]:,} sessions took {sf_bytes[-1] / 1e6:.1f} MB of the stateful server's memory "
        f"({per_session:.0f} bytes each), while the stateless server's memory changed by "
        f"{sl_bytes[-1] / 1e3:+.0f} kB for as many users. In exchange, with a {small}-line cart every stateless "
        f"request re-sent {extra_small_cart} more bytes (a session's worth every {break_even:.1f} requests); "
        + (f"at {too_big} cart lines the token ({token[lines.index(too_big)]:,} bytes) no longer fits in a cookie, "
           f"while the sid cookie stays {growth['stateful']['credential'][0]} bytes."
           if too_big is not None else "the token stayed within the cookie limit.")
    )
    measurements = {
        "sessions": users, "stateful bytes held": sf_bytes, "stateless bytes held": sl_bytes,
        "bytes per session": per_session, "bytes per session (HTTP logins)": per_http_session,
        "stateless bytes per user": per_stateless_user, "HTTP logins": http_users,
        "sessions seen by GET /health": health["stateful"],
        "cart lines when the token outgrows a cookie": too_big,
        "sid cookie bytes": growth["stateful"]["credential"][0],
        "extra request bytes, stateless (small cart)": extra_small_cart,
        "requests until the extra bytes equal one session": break_even,
    }
    return record(Evidence(row="resource_usage", measurements=measurements, checks=checks, verdict=verdict,
                           reading=reading, seconds=seconds, extra={"cart": growth}))


def plot(ev: Evidence, ax: Any = None) -> Any:
    """Two panels: server memory against sessions, and credential size against cart lines."""
    import matplotlib.pyplot as plt

    m, cart = ev.measurements, ev.extra["cart"]
    if ax is None:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    else:
        left, right = ax if isinstance(ax, (list, tuple)) else (ax, None)
        fig = left.figure
    left.plot(m["sessions"], [b / 1e6 for b in m["stateful bytes held"]], "o-", label="stateful (memory store)")
    left.plot(m["sessions"], [b / 1e6 for b in m["stateless bytes held"]], "s-", label="stateless (JWT)")
    left.set_xlabel("users logged in")
    left.set_ylabel("server memory held (MB)")
    left.set_title("Server memory against sessions")
    left.legend(fontsize=8)
    if right is not None:
        right.plot(cart["stateful"]["lines"], cart["stateful"]["credential"], label="sid cookie")
        right.plot(cart["stateless"]["lines"], cart["stateless"]["credential"], label="token, kept in a cookie")
        right.axhline(COOKIE_LIMIT, color="grey", linestyle="--", label=f"browser limit ({COOKIE_LIMIT} bytes)")
        too_big = m["cart lines when the token outgrows a cookie"]
        if too_big is not None:
            right.axvline(too_big, color="tab:red", linestyle=":", label=f"too big from {too_big} lines")
        right.set_xlabel("cart lines")
        right.set_ylabel("cookie bytes (name + value)")
        right.set_title("What the browser must carry")
        right.set_ylim(0, max(COOKIE_LIMIT, *cart["stateless"]["credential"]) * 1.5)  # room for the legend
        right.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


