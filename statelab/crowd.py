"""Plumbing for the experiments' cores in the notebooks: crowds of users, requests at once, counts, percentiles.

Each row notebook shows the heart of its experiment in one short cell that reads like its sentence::

    users = logged_in(cluster.url, 20)                   # twenty users, each logged in
    answers = each(users, lambda u: u.cart())            # every user asks for the cart, all at once
    print(statuses(answers), "served by", served_by(answers), "p95", percentile(ms(answers), 95), "ms")

The experiment modules (``statelab/experiments/<row>.py``) measure the same thing at full size, with
rounds, several designs and statistics; these helpers are only what a short cell needs.
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .client import Client, Exchange


def logged_in(url: str, n: int, *, prefix: str = "user", traced: bool = False) -> list[Client]:
    """``n`` browsers at ``url``, each logged in as its own user (``user-0``, ``user-1``, ...)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1000:
        raise ValueError(f"a crowd is 1 to 1000 users, not {n!r}")
    users = [Client(url, traced=traced) for _ in range(n)]
    for i, user in enumerate(users):
        user.login(f"{prefix}-{i}")
    return users


def copies(client: Client, n: int = 1) -> list[Client]:
    """``n`` more browsers holding what ``client`` holds (its cookies and its token): a user's other tabs, or
    a thief's copy of the credential. Each then keeps its own: a new token or cookie goes to that copy alone."""
    out = []
    for _ in range(n):
        other = Client(client.url, ip=client.ip, timeout=client.timeout)
        for name, value in client.cookies.items():
            other.set_cookie(name, value)
        other.token = client.token
        out.append(other)
    return out


def at_once(*calls: Callable[[], Any], timeout: float = 30.0) -> list[Any]:
    """Run every call in its own thread, released together (a barrier); their results, in order.

    That is how two tabs or eight shoppers act "at the same moment": each thread waits at the gate
    until all have started, then all go."""
    results: list[Any] = [None] * len(calls)
    gate = threading.Barrier(len(calls)) if calls else None

    def go(i: int, call: Callable[[], Any]) -> None:
        try:
            gate.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass
        results[i] = call()

    threads = [threading.Thread(target=go, args=(i, c), name=f"statelab-at-once-{i}", daemon=True)
               for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return results


def each(users: Iterable[Client], action: Callable[[Client], Any]) -> list[Any]:
    """``action(user)`` for every user, all at once; the results in the users' order."""
    return at_once(*(lambda u=u: action(u) for u in users))


def statuses(exchanges: Iterable[Exchange]) -> dict[Any, int]:
    """How many answers had each status (``None``: no answer at all), most common first."""
    return dict(collections.Counter(ex.status for ex in exchanges).most_common())


def served_by(exchanges: Iterable[Exchange]) -> dict[str, int]:
    """How many answers each server gave, by name."""
    return dict(sorted(collections.Counter(ex.served_by or "nobody" for ex in exchanges).items()))


def ms(exchanges: Iterable[Exchange]) -> list[float]:
    """Each exchange's time, as the client measured it, in milliseconds."""
    return [ex.ms for ex in exchanges]


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank: a value that was measured); NaN when there are none."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def share(exchanges: Sequence[Exchange], ok: Callable[[Exchange], bool] = lambda ex: ex.ok) -> float:
    """The share of exchanges for which ``ok(exchange)`` holds (answered 2xx/3xx by default)."""
    return sum(1 for ex in exchanges if ok(ex)) / len(exchanges) if exchanges else math.nan


def books(client: Client, item: str | None = None) -> int:
    """How many books (or of ``item``) the client's cart holds now, by asking the server."""
    body = client.cart().body
    cart = body.get("cart") if isinstance(body, dict) else None
    return sum(line.get("qty", 0) for line in cart or [] if item is None or line.get("item") == item)
