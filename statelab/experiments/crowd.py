"""A crowd of shoppers for the failure lessons: log many users in, keep them busy, count what failed.

The fault-tolerance and deployment experiments ask the same question of every design: while
something happens to the servers (a crash, a rolling restart), which requests failed, which users
were logged out, and which writes landed? This module is that question as code, over real HTTP:

    crowd = log_in(cluster.url, 30)                        # 30 users, each logged in with a book in the cart
    traffic = shop_while(crowd, lambda: cluster.kill(1))   # they keep shopping while server-1 crashes
    traffic.count("failed", op="write")                    # unkeyed writes that got no answer (502)
    lost = lost_carts(crowd)                               # whose cart is gone afterwards?

Every user is a :class:`statelab.Client` (a browser: cookies, token), so the balancer's sticky
cookie, the session cookie and the token all behave exactly as they do for a learner. Users send
three kinds of request in turn (:data:`OPS`): a read (``GET /cart``), a write (``POST /cart``
adding a pen) and a *keyed* write (``POST /cart`` adding ink, with an ``Idempotency-Key``). A
balancer may re-send a request cut by a crash only when repeating it is safe (RFC 9110, 9.2.2):
reads are, keyed writes are by the client's word, plain writes are not.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..client import Client, Exchange
from ..shop.plugins import InFlight

ITEM = "book"  # in every cart from the start
OPS = ("read", "write", "keyed write")
ITEMS = {"write": "pen", "keyed write": "ink"}  # what each kind of write adds, so each can be counted
PHASES = ("before", "during", "after")


@dataclass
class Shopper:
    """One logged-in user: a name, a browser, and the server that answered the login.

    With in-memory sessions and sticky routing, ``home`` is where the session lives. ``sent``
    and ``acked`` count this user's requests by kind, sent and answered 2xx.
    """

    name: str
    client: Client
    home: str | None
    group: str = ""  # which design this user shops in, when one crowd spans several clusters
    sent: Counter[str] = field(default_factory=Counter)
    acked: Counter[str] = field(default_factory=Counter)


def log_in(url: str, users: int, *, prefix: str = "user", item: str = ITEM, group: str = "",
           workers: int = 8) -> list[Shopper]:
    """Log ``users`` users in at ``url``, each with ``item`` in the cart; raise if any step fails.

    ``workers`` threads log users in side by side (a cart write may take a while on a server that
    does slow work after each write), and the crowd comes back in order: ``prefix0``, ``prefix1``, ...
    """

    def one(i: int) -> Shopper:
        client = Client(url)
        name = f"{prefix}{i}"
        ex = client.login(name)
        added = client.add_to_cart(item)
        if not (ex.ok and added.ok):
            client.close()
            raise RuntimeError(f"could not set up {name}: {ex.summary()} / {added.summary()}")
        return Shopper(name, client, ex.served_by, group)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, users)), thread_name_prefix="statelab-login") as pool:
        futures = [pool.submit(one, i) for i in range(users)]
    crowd = [f.result() for f in futures if f.exception() is None]
    problems = [f.exception() for f in futures if f.exception() is not None]
    if problems:
        close(crowd)
        raise problems[0]  # type: ignore[misc]
    return crowd


def send(shopper: Shopper, op: str) -> Exchange:
    """One request of kind ``op`` (see :data:`OPS`) from ``shopper``, counted on the shopper."""
    client = shopper.client
    if op == "read":
        ex = client.cart()
    elif op == "write":
        ex = client.add_to_cart(ITEMS[op])
    elif op == "keyed write":
        key = f"{shopper.name}-{shopper.sent[op]}-{secrets.token_hex(4)}"  # new for each write, same on a re-send
        ex = client.post("/cart", {"item": ITEMS[op], "qty": 1}, headers={"Idempotency-Key": key})
    else:
        raise ValueError(f"op must be one of {OPS}, not {op!r}")
    shopper.sent[op] += 1
    shopper.acked[op] += ex.ok
    return ex


def outcome(ex: Exchange) -> str:
    """``"ok"`` (2xx/3xx), ``"logged out"`` (401), ``"failed"`` (no answer or 5xx), else ``"other"``."""
    if ex.ok:
        return "ok"
    if ex.status == 401:
        return "logged out"
    if ex.status is None or ex.status >= 500:
        return "failed"
    return "other"


@dataclass
class Traffic:
    """What the shoppers saw while an action ran: outcomes by phase, design group and kind of request."""

    seconds: float = 0.0
    action_seconds: float = 0.0
    tally: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)  # (phase, group, op, outcome)
    failures: list[str] = field(default_factory=list)  # summaries of the failed requests

    def count(self, kind: str | None = None, *, phase: str | None = None, group: str | None = None,
              op: str | None = None) -> int:
        """Requests with outcome ``kind`` (None: any), sent in ``phase``, by ``group``, of kind ``op``."""
        if phase is not None and phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
        return sum(n for (p, g, o, k), n in self.tally.items()
                   if kind in (None, k) and phase in (None, p) and group in (None, g) and op in (None, o))

    def requests_of(self, group: str) -> int:
        """Requests sent by the users of ``group``."""
        return self.count(group=group)

    @property
    def requests(self) -> int:
        return self.count()

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def logged_out(self) -> int:
        return self.count("logged out")


def shop_while(crowd: list[Shopper], action: Callable[[], Any], *, workers: int = 3,
               ops: tuple[str, ...] = OPS) -> Traffic:
    """Keep ``crowd`` shopping from ``workers`` threads while ``action()`` runs in this thread.

    Each worker owns a slice of the users and walks through them, one request each, in turn;
    a user's requests cycle through ``ops`` (read, write, keyed write). The action starts once
    every worker has finished one pass (so it hits busy servers), and the traffic stops once
    every worker has finished one pass *after* the action returned (so every user has made at
    least one request since). Each request's outcome is tallied by the phase in which it was
    sent: before, during or after the action.
    """
    if not crowd:
        raise ValueError("the crowd is empty: log some users in first")
    unknown = [op for op in ops if op not in OPS]
    if unknown or not ops:
        raise ValueError(f"ops must be some of {OPS}, not {ops!r}")
    workers = max(1, min(workers, len(crowd)))
    slices = [crowd[i::workers] for i in range(workers)]
    traffic = Traffic()
    lock = threading.Lock()
    phase = ["before"]
    # the barrier's action runs before anyone is released: no request is sent as "before" after the action began
    warmed = threading.Barrier(workers + 1, action=lambda: phase.__setitem__(0, "during"))
    errors: list[BaseException] = []

    def work(users: list[Shopper]) -> None:
        try:
            first = True
            while True:
                last = phase[0] == "after"  # a pass begun after the action: every user asks once more
                for user in users:
                    when = phase[0]  # tallied by the phase in which the request was sent
                    op = ops[sum(user.sent.values()) % len(ops)]
                    ex = send(user, op)
                    kind = outcome(ex)
                    with lock:
                        traffic.tally[(when, user.group, op, kind)] += 1
                        if kind == "failed":
                            traffic.failures.append(f"{user.name}: {ex.summary()}")
                if first:
                    first = False
                    warmed.wait(timeout=30)
                if last:
                    return
        except BaseException as e:  # report it from the caller's thread, never lose it
            errors.append(e)
            try:
                warmed.abort()
            except threading.BrokenBarrierError:
                pass

    threads = [threading.Thread(target=work, args=(s,), name=f"statelab-shopper-{i}", daemon=True)
               for i, s in enumerate(slices)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    try:
        try:
            warmed.wait(timeout=30)
        except threading.BrokenBarrierError:
            pass
        started = time.perf_counter()
        try:
            action()
        finally:
            traffic.action_seconds = time.perf_counter() - started
            with lock:
                phase[0] = "after"
    finally:
        for t in threads:
            t.join(timeout=60)
    traffic.seconds = time.perf_counter() - began
    if errors:
        raise errors[0]
    return traffic


def when_writing(in_flight: InFlight, server: str, *, writes: int = 2, patience: float = 0.5,
                 timeout: float = 5.0) -> int:
    """Wait until ``server`` is working on ``writes`` plain writes; return how many it is working on.

    After ``patience`` seconds it settles for one (a busy machine, or few users on that server),
    and after ``timeout`` seconds for none. On loopback a request takes a millisecond, so a crash
    at a random instant meets almost nothing in flight; on a shop under real load there always
    is. The failure experiments crash or replace a server at such an instant, and record how many
    writes it met.
    """
    if not in_flight.wait(lambda: in_flight.now(server, "write") >= writes, patience):
        in_flight.wait(lambda: in_flight.now(server, "write") >= 1, timeout)
    return in_flight.now(server, "write")


def cart_of(who: Shopper | Client) -> tuple[dict[str, int] | None, Exchange]:
    """``({item: qty}, answer)`` for a user's cart asked once; None when it was not answered (e.g. 401)."""
    ex = (who.client if isinstance(who, Shopper) else who).cart()
    cart = ex.body.get("cart") if ex.ok and isinstance(ex.body, dict) else None
    if not isinstance(cart, list):
        return None, ex
    return {line["item"]: line.get("qty", 0) for line in cart if isinstance(line, dict) and "item" in line}, ex


def has_cart(shopper: Shopper, item: str = ITEM) -> tuple[bool, Exchange]:
    """(still has ``item`` in the cart, the answer to ``GET /cart``) for one user, asked once."""
    cart, ex = cart_of(shopper)
    return cart is not None and cart.get(item, 0) > 0, ex


def lost_carts(crowd: list[Shopper], item: str = ITEM) -> list[Shopper]:
    """The users whose cart no longer holds ``item`` (logged out, emptied, or no answer)."""
    return [s for s in crowd if not has_cart(s, item)[0]]


@dataclass
class Landed:
    """How the writes of a crowd ended up in the carts that survived: per kind of write, summed over users.

    ``extra`` counts writes in a cart beyond those answered 2xx: writes acted on although their
    answer was lost (a 502), or applied twice. ``missing`` counts writes answered 2xx that are
    not in the cart.
    """

    users: int = 0  # users whose cart survived (still holds the first item)
    gone: int = 0   # users whose cart is gone (logged out, emptied, or no answer)
    acked: Counter[str] = field(default_factory=Counter)
    extra: Counter[str] = field(default_factory=Counter)
    missing: Counter[str] = field(default_factory=Counter)


def landed(crowd: list[Shopper]) -> Landed:
    """Compare each surviving cart with what its user was told (users whose cart is gone are skipped)."""
    result = Landed()
    for s in crowd:
        cart, _ = cart_of(s)
        if cart is None or cart.get(ITEM, 0) == 0:
            result.gone += 1
            continue
        result.users += 1
        for op, item in ITEMS.items():
            got, told = cart.get(item, 0), s.acked[op]
            result.acked[op] += told
            result.extra[op] += max(got - told, 0)
            result.missing[op] += max(told - got, 0)
    return result


def by_home(crowd: list[Shopper], lost: list[Shopper]) -> dict[str, tuple[int, int]]:
    """``{server: (users whose login it answered, of those how many lost their cart)}``, by name."""
    lost_names = {s.name for s in lost}
    table: dict[str, list[int]] = {}
    for s in crowd:
        row = table.setdefault(s.home or "?", [0, 0])
        row[0] += 1
        row[1] += s.name in lost_names
    return {home: (n, k) for home, (n, k) in sorted(table.items())}


def close(crowd: list[Shopper]) -> None:
    """Close every user's browser (its connection pool)."""
    for s in crowd:
        s.client.close()
