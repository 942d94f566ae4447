"""A crowd of shoppers for the failure lessons: log many users in, keep them busy, count who lost what.

The fault-tolerance and deployment experiments ask the same question of every design: while
something happens to the servers (a crash, a rolling restart), how many requests failed, and
which users were logged out? This module is that question as code, over real HTTP:

    crowd = log_in(cluster.url, 30)                  # 30 users, each logged in with a book in the cart
    traffic = shop_while(crowd, lambda: cluster.kill(1))   # they keep shopping while server-1 crashes
    lost = lost_carts(crowd)                          # whose cart is gone afterwards?

Every user is a :class:`statelab.Client` (a browser: cookies, token), so the balancer's sticky
cookie, the session cookie and the token all behave exactly as they do for a learner.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..client import Client, Exchange

ITEM = "book"


@dataclass
class Shopper:
    """One logged-in user: a name, a browser, and the server that answered the login.

    With in-memory sessions and sticky routing, ``home`` is where the session lives.
    """

    name: str
    client: Client
    home: str | None
    group: str = ""  # which design this user shops in, when one crowd spans several clusters


def log_in(url: str, users: int, *, prefix: str = "user", item: str = ITEM, group: str = "") -> list[Shopper]:
    """Log ``users`` users in at ``url``, each with ``item`` in the cart; raise if any step fails."""
    crowd = []
    for i in range(users):
        client = Client(url)
        name = f"{prefix}{i}"
        ex = client.login(name)
        added = client.add_to_cart(item)
        if not (ex.ok and added.ok):
            raise RuntimeError(f"could not set up {name}: {ex.summary()} / {added.summary()}")
        crowd.append(Shopper(name, client, ex.served_by, group))
    return crowd


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
    """What the shoppers saw while an action ran: outcomes before, during and after it."""

    seconds: float = 0.0
    action_seconds: float = 0.0
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: {p: Counter() for p in PHASES})
    by_group: Counter[tuple[str, str]] = field(default_factory=Counter)  # (shopper.group, outcome) -> requests
    failures: list[str] = field(default_factory=list)  # summaries of the failed requests

    def count(self, kind: str, phase: str | None = None, group: str | None = None) -> int:
        """How many requests had outcome ``kind`` (in ``phase``, or all phases; for ``group``, or all)."""
        if group is not None:
            if phase is not None:
                raise ValueError("count by phase or by group, not both")
            return self.by_group[(group, kind)]
        phases = PHASES if phase is None else (phase,)
        return sum(self.outcomes[p][kind] for p in phases)

    def requests_of(self, group: str) -> int:
        """Requests sent by the users of ``group``."""
        return sum(n for (g, _), n in self.by_group.items() if g == group)

    @property
    def requests(self) -> int:
        return sum(sum(c.values()) for c in self.outcomes.values())

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def logged_out(self) -> int:
        return self.count("logged out")


PHASES = ("before", "during", "after")


def shop_while(crowd: list[Shopper], action: Callable[[], Any], *, workers: int = 3,
               request: Callable[[Shopper], Exchange] | None = None) -> Traffic:
    """Keep ``crowd`` shopping from ``workers`` threads while ``action()`` runs in this thread.

    Each worker owns a slice of the users and walks through them, one request each, in turn.
    The action starts once every worker has finished one pass (so it hits busy servers), and
    the traffic stops once every worker has finished one pass *after* the action returned
    (so every user has made at least one request since). Each request's outcome is tallied
    by phase: before, during or after the action. ``request`` defaults to ``GET /cart``.
    """
    if not crowd:
        raise ValueError("the crowd is empty: log some users in first")
    send = request or (lambda s: s.client.cart())
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
                    ex = send(user)
                    kind = outcome(ex)
                    with lock:
                        traffic.outcomes[when][kind] += 1
                        traffic.by_group[(user.group, kind)] += 1
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


def has_cart(shopper: Shopper, item: str = ITEM) -> tuple[bool, Exchange]:
    """(still has ``item`` in the cart, the answer to ``GET /cart``) for one user, asked once."""
    ex = shopper.client.cart()
    cart = ex.body.get("cart") if ex.ok and isinstance(ex.body, dict) else None
    kept = isinstance(cart, list) and any(isinstance(line, dict) and line.get("item") == item for line in cart)
    return kept, ex


def lost_carts(crowd: list[Shopper], item: str = ITEM) -> list[Shopper]:
    """The users whose cart no longer holds ``item`` (logged out, emptied, or no answer)."""
    return [s for s in crowd if not has_cart(s, item)[0]]


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
