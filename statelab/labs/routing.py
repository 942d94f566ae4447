"""Lab 03 · Sticky routing with failover: checkers for a routing function the balancer calls.

The learner writes routing functions with the balancer's extension point (see
:mod:`statelab.topology.balancer`): ``(client_key, cookie, live, all) -> backend name``. ``pin`` keeps a user
on one server, ``pin_with_failover`` re-pins users whose server died, and ``draining(strategy,
drained)`` wraps a strategy so a server can be emptied for maintenance. The checkers put the
function in front of real stateful servers with in-memory sessions, where a wrong route logs the
user out, and crash servers.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from ..client import Client, Exchange
from ..topology.cluster import Cluster
from .report import LearnerError, Report, call, checker

NAMES = ["server-0", "server-1", "server-2"]
USERS = 12


def _has_book(ex: Exchange) -> bool:
    return ex.ok and isinstance(ex.body, dict) and {"item": "book", "qty": 1} in (ex.body.get("cart") or [])


def _crowd(url: str, n: int, prefix: str, first_ip: int = 1) -> list[Client]:
    """``n`` users from different addresses, each logged in with a book in the cart."""
    clients = []
    for i in range(n):
        c = Client(url, ip=f"10.0.{first_ip // 250}.{first_ip % 250 + i}")
        c.login(f"{prefix}{i}")
        c.add_to_cart("book")
        clients.append(c)
    return clients


def _stand_in(client_key: str, cookie: str | None, live: list[str], all: list[str]) -> str:
    """Used by the task 3 check while the learner's task 2 is not ready: any live server, at random.

    It ignores the cookie, so it is no answer to task 1 or 2 (a user would land anywhere); task 3's
    ``draining`` keeps a user on a live server itself and asks the strategy only about new users.
    """
    return random.choice(live)


def _smoke(fn: Any, what: str, cookie: str | None, live: list[str]) -> Any:
    return call(f"{what}(client_key, cookie={cookie!r}, live={live}, all)", fn, "10.0.0.1", cookie, list(live),
                list(NAMES))


# --------------------------------------------------------------------------- task 1

@checker("Task 1 · pin each user to one server")
def check_pins_users(report: Report, pin: Any) -> None:
    """Twelve users shop through the learner's function in front of memory sessions: nobody may be logged out."""
    new = _smoke(pin, "pin", None, NAMES)
    report.require("a new user (no cookie) gets a live server", new in NAMES, f"one of {NAMES}", repr(new))
    back = _smoke(pin, "pin", "server-2", NAMES)
    report.require("a pinned user goes back to their server", back == "server-2", "'server-2'", repr(back))
    with Cluster(3, "stateful", store="memory", balancer=pin) as cluster:
        clients = _crowd(cluster.url, USERS, "user")
        for c in clients:
            c.cart()
            c.cart()
        carts = [c.cart() for c in clients]
        failures = [ex.summary() for c in clients for ex in c.history if not ex.ok]
        report.expect("every request is answered (memory sessions are found)", not failures,
                      "200 for every request", failures[0] if failures else "all 200")
        servers = [{ex.served_by for ex in c.history} for c in clients]
        report.expect("each user's requests all go to one server", all(len(s) == 1 for s in servers),
                      "one server per user", f"{sum(len(s) == 1 for s in servers)} of {USERS} users stayed on one")
        report.expect("every cart is intact", all(_has_book(ex) for ex in carts), f"{USERS} of {USERS}",
                      sum(_has_book(ex) for ex in carts))
        homes = Counter(c.history[0].served_by for c in clients if c.history[0].served_by in NAMES)
        report.expect("new users are spread over the servers", len(homes) >= 2, "2 or 3 servers in use", dict(homes))
        cookie = cluster.balancer.cookie_name  # statelab-lb-<port>: each balancer names its own
        remembered = sum(c.cookies.get(cookie) == c.history[0].served_by for c in clients)
        report.expect(f"the balancer cookie ({cookie}) names each user's server", remembered == USERS,
                      f"{USERS} of {USERS}", remembered)


# --------------------------------------------------------------------------- task 2

@checker("Task 2 · re-pin users when their server dies")
def check_failover(report: Report, pin_with_failover: Any) -> None:
    """Crash the busiest server: its users must land on a live one and stay; nobody else may move."""
    live = ["server-0", "server-2"]
    moved_to = _smoke(pin_with_failover, "pin_with_failover", "server-1", live)
    report.require("a user pinned to a dead server is given a live one", moved_to in live, f"one of {live}",
                   repr(moved_to))
    stay = _smoke(pin_with_failover, "pin_with_failover", "server-2", live)
    report.require("a user pinned to a live server stays", stay == "server-2", "'server-2'", repr(stay))
    with Cluster(3, "stateful", store="memory", balancer=pin_with_failover) as cluster:
        clients = _crowd(cluster.url, USERS, "user")
        home = {id(c): c.history[0].served_by for c in clients}
        victim = Counter(home.values()).most_common(1)[0][0]
        cluster.kill(victim)
        first = {id(c): c.me() for c in clients}
        answered = [ex for ex in first.values() if ex.status is not None and ex.status < 500]
        report.expect(f"after {victim} crashed, every user still gets an answer", len(answered) == USERS,
                      f"{USERS} answers below 500",
                      next((ex.summary() for ex in first.values() if ex not in answered), f"{len(answered)}"))
        moved = [c for c in clients if home[id(c)] == victim]
        stayed = [c for c in clients if home[id(c)] != victim]
        landed = {first[id(c)].served_by for c in moved}
        report.expect(f"users of {victim} are re-pinned to a live server", victim not in landed and
                      landed <= set(NAMES), f"served by {[n for n in NAMES if n != victim]}", sorted(map(str, landed)))
        later = {id(c): [c.me().served_by for _ in range(3)] for c in clients}
        steady = sum(set(later[id(c)]) == {first[id(c)].served_by} for c in moved)
        report.expect("re-pinned users stay on their new server", steady == len(moved),
                      f"{len(moved)} of {len(moved)}", steady)
        unmoved = sum(set(later[id(c)]) | {first[id(c)].served_by} == {home[id(c)]} for c in stayed)
        report.expect("users of the other servers do not move", unmoved == len(stayed),
                      f"{len(stayed)} of {len(stayed)}", unmoved)
        kept = sum(_has_book(c.cart()) for c in stayed)
        report.expect("their carts are intact", kept == len(stayed), f"{len(stayed)} of {len(stayed)}", kept)
        relogin = sum(c.me().status == 401 for c in moved)
        report.note(f"{relogin} of {len(moved)} re-pinned users must log in again: routing moved them, but "
                    f"{victim}'s memory is gone (Lab 01's shared store is the fix for that)")
        now = {id(c): c.last.served_by for c in clients}
        cluster.restart(victim)
        back = sum(c.me().served_by != now[id(c)] for c in clients)
        report.expect(f"nobody moves back when {victim} returns (a move would cost a session)", back == 0,
                      "0 users moved", back)


# --------------------------------------------------------------------------- task 3

@checker("Task 3 · session draining: no new user on a server before maintenance")
def check_draining(report: Report, draining: Any, pin_with_failover: Any) -> None:
    """Drain the busiest server: its users stay until it goes down, new users never land on it."""
    drained: set[str] = set()
    try:
        _smoke(pin_with_failover, "pin_with_failover", "server-1", ["server-0", "server-2"])
    except LearnerError as e:
        report.note(f"your pin_with_failover is not ready ({e}); this check wraps a stand-in that places new users "
                    "at random")
        pin_with_failover = _stand_in
    routed = call("draining(pin_with_failover, drained)", draining, pin_with_failover, drained)
    report.require("draining(strategy, drained) returns a routing function", callable(routed),
                   "a function (client_key, cookie, live, all) -> name", f"{routed!r}"[:80])
    with Cluster(3, "stateful", store="memory", balancer=routed) as cluster:
        clients = _crowd(cluster.url, USERS, "user")
        home = {id(c): c.history[0].served_by for c in clients}
        target = Counter(home.values()).most_common(1)[0][0]
        drained.add(target)
        picks = {call("your draining function", routed, f"10.9.0.{i}", None, list(NAMES), list(NAMES))
                 for i in range(30)}
        report.expect(f"with {target} drained, new users are never given it", target not in picks,
                      f"picks among {[n for n in NAMES if n != target]}", sorted(map(str, picks)))
        pinned = [c for c in clients if home[id(c)] == target]
        for c in clients:
            c.me()
        stay = sum(c.last.served_by == target and _has_book(c.cart()) for c in pinned)
        report.expect(f"users already on {target} stay there, carts intact", stay == len(pinned),
                      f"{len(pinned)} of {len(pinned)}", stay)
        newcomers = _crowd(cluster.url, USERS, "late", first_ip=100)
        landed = Counter(c.history[0].served_by for c in newcomers)
        report.expect("new users land elsewhere (over HTTP)", target not in landed and all(
            c.history[-1].ok for c in newcomers), f"none on {target}, all logged in", dict(landed))
        cluster.kill(target)
        after = [c.me() for c in pinned]
        report.expect(f"when {target} finally goes down, its users get a live server",
                      all(ex.status is not None and ex.status < 500 and ex.served_by != target for ex in after),
                      "answers below 500 from other servers", [ex.summary() for ex in after][:2])
