"""Caching strategies: is response caching simpler when the server keeps no session?

The seed says stateful caching "may be complex due to session data" and stateless caching is
"simplified ... without session state". This experiment puts a shared HTTP cache
(:class:`statelab.topology.cache.SharedCache`) in front of a server of each design and lets a few users
shop through it, under four set-ups:

``correct``          a correct shared cache; the app marks per-user answers ``private`` (as it does)
``misconfigured``    a cache that ignores the headers and keys by url alone
``public+vary``      a correct cache; per-user answers marked ``public`` but with ``Vary: Cookie`` or
                     ``Vary: Authorization`` (the cache keeps one copy per credential)
``public-no-vary``   a correct cache; per-user answers marked ``public`` and no ``Vary`` (an origin bug)

It counts, from the answers each user got: cache hits on the public catalog and on the per-user
answers (``/me``, ``/cart``), requests that reached the server, and *leaks*: answers carrying
another user's identity or cart. Each half of the row gets its own verdict from its own checks
(is per-user caching hard for sessions? is it simpler without them?), and benefit 4c, personalised
answers, is judged from whether every user got their own answers through a correct cache.
"""

from __future__ import annotations

import time
from typing import Any

from .. import Client, Server
from ..shop.plugins import personal_headers
from ..topology.cache import SharedCache
from . import Evidence, Judgement, judged, progress, record

ROW = "caching"
DESIGNS = ("stateful", "stateless")
SETUPS: dict[str, tuple[bool, str]] = {  # name -> (cache honours headers, what the app marks per-user answers)
    "correct": (True, "private"),
    "misconfigured": (False, "private"),
    "public+vary": (True, "public+vary"),
    "public-no-vary": (True, "public"),
}
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")

#: Checks made for each design (keyed ``"<design>: <check>"``) that the claims name.
C_PERSONAL = "through a correct cache each user's personalised answers (/me, /cart) are their own and current"
C_LEAKS = "a misconfigured cache serves one user's identity or cart to another"
C_NO_VARY = "marked public without Vary, even a correct cache leaks per-user answers"
C_PER_USER = "stateless: per-user answers stay per user even when the cache or the headers are wrong"
C_CATALOG_ALIKE = "the public catalog caches alike in both designs (hit ratios within 0.1)"
C_MORE_COPIES = "marked public with Vary, the stateless shop stores more copies of /me (a new token per cart change)"


def _shop(users: list[str], url: str, rounds: int) -> dict[str, Any]:
    """Each user logs in, then each round adds one of their own item and reads catalog, /me, /cart twice.

    Users take turns, as they would on a real site. Every answer is checked against who asked.
    """
    clients = {u: Client(url) for u in users}
    own = {u: f"item-{u}" for u in users}
    tally = {"requests": 0, "leaks": 0, "stale": 0, "personal_ok": 0, "personal_gets": 0,
             "catalog_hits": 0, "catalog_gets": 0, "personal_hits": 0}
    for user, client in clients.items():
        client.login(user)
        tally["requests"] += 1
    for r in range(1, rounds + 1):
        for user, client in clients.items():
            client.add_to_cart(own[user])
            tally["requests"] += 1
            for _ in range(2):
                answers = (client.catalog(), client.me(), client.cart())
                tally["requests"] += 3
                cat, me, cart = answers
                tally["catalog_gets"] += 1
                tally["catalog_hits"] += cat.headers.get("X-Cache") == "HIT"
                for ex in (me, cart):
                    tally["personal_gets"] += 1
                    tally["personal_hits"] += ex.headers.get("X-Cache") == "HIT"
                body_me = me.body if isinstance(me.body, dict) else {}
                lines = cart.body.get("cart", []) if isinstance(cart.body, dict) else []
                items = {line.get("item") for line in lines if isinstance(line, dict)}
                foreign = body_me.get("user") != user or bool(items - {own[user]})
                mine = [line.get("qty") for line in lines if isinstance(line, dict) and line.get("item") == own[user]]
                tally["leaks"] += int(body_me.get("user") != user) + int(bool(items - {own[user]}))
                if not foreign:
                    if mine == [r]:
                        tally["personal_ok"] += 1
                    else:
                        tally["stale"] += 1  # your own cart, but not as it is now
    for client in clients.values():
        client.close()
    return tally


def _phase(server: Server, cache: SharedCache, policy: dict[str, str], setup: str, users: list[str],
           rounds: int) -> dict[str, Any]:
    """One set-up: an empty cache, the app's headers set by ``policy``, users shopping through it."""
    honour, personal = SETUPS[setup]
    policy["personal"] = personal
    cache.clear()
    cache.reset_stats()
    before = server.requests
    tally = _shop(users, cache.url, rounds)
    backend = server.requests - before
    revalidated = 0
    if honour:  # let the catalog go stale: the next request revalidates with If-None-Match
        cache.expire()
        probe = Client(cache.url)
        revalidated = int(probe.catalog().headers.get("X-Cache") == "REVALIDATED")
        probe.close()
    entries = cache.entries
    return {
        "requests": tally["requests"],
        "backend requests": backend,
        "catalog requests": tally["catalog_gets"],
        "catalog requests reaching the server": tally["catalog_gets"] - tally["catalog_hits"],
        "catalog hit ratio": tally["catalog_hits"] / tally["catalog_gets"],
        "personal hit ratio": tally["personal_hits"] / tally["personal_gets"],
        "per-user answers": tally["personal_gets"],
        "leaks": tally["leaks"],
        "stale own carts": tally["stale"],
        "personal answers right": tally["personal_ok"],
        "personal answer pairs": tally["personal_gets"] // 2,  # /me and /cart are checked as one pair
        "stored /me copies": entries.get("/me", 0),
        "stored /catalog copies": entries.get("/catalog", 0),
        "revalidated with 304": int(revalidated and cache.stats["upstream_304"] > 0),
    }


def run(*, quick: bool = False, users: int | None = None, rounds: int | None = None) -> Evidence:
    """Shop through a shared cache in front of a stateful and a stateless server, under four set-ups.

    Tests the row by counting, per design: catalog hit ratio, per-user hit ratio, requests that
    reached the server, and answers that carried another user's data.
    """
    n_users = users if users is not None else (3 if quick else 4)
    n_rounds = rounds if rounds is not None else 2
    if not 2 <= n_users <= len(USERS) or not 1 <= n_rounds <= 20:
        raise ValueError(f"users must be 2 to {len(USERS)} and rounds 1 to 20")
    names = list(USERS[:n_users])
    began = time.perf_counter()
    table: dict[str, dict[str, dict[str, Any]]] = {d: {} for d in DESIGNS}
    steps = [(d, s) for d in DESIGNS for s in SETUPS]
    running: list[Any] = []
    rigs: dict[str, tuple[Server, dict[str, str], dict[bool, SharedCache]]] = {}
    try:
        for design in DESIGNS:
            policy = {"personal": "private"}
            server = Server(design, name=f"{design}-shop", plugins=[personal_headers(policy)])
            running.append(server.start())
            caches = {honour: SharedCache(server, honour_headers=honour, start=False) for honour in (True, False)}
            running.extend(c.start() for c in caches.values())
            rigs[design] = (server, policy, caches)
        for design, setup in progress(steps, "caching"):
            server, policy, caches = rigs[design]
            table[design][setup] = _phase(server, caches[SETUPS[setup][0]], policy, setup, names, n_rounds)
    finally:
        for service in reversed(running):
            service.stop()
    return record(_evidence(table, n_users, n_rounds, time.perf_counter() - began))


#: Which checks judge each claim (see :class:`~statelab.experiments.Judgement`); ``_evidence()`` computes those checks
#: and adds to each claim the sentence of what was measured.
CLAIMS = {
    "stateful": Judgement(supports=(f"stateful: {C_LEAKS}", f"stateful: {C_NO_VARY}"),
                          qualifies=(f"stateless: {C_LEAKS}", f"stateless: {C_NO_VARY}")),
    "stateless": Judgement(supports=(C_PER_USER,), qualifies=(C_CATALOG_ALIKE, C_MORE_COPIES)),
    "4c": Judgement(supports=(f"stateful: {C_PERSONAL}",), qualifies=(f"stateless: {C_PERSONAL}",)),
}


def _evidence(table: dict[str, dict[str, dict[str, Any]]], n_users: int, n_rounds: int, seconds: float) -> Evidence:
    def each(setup: str, key: str) -> dict[str, Any]:
        return {d: table[d][setup][key] for d in DESIGNS}

    correct, bad, no_vary = each("correct", "leaks"), each("misconfigured", "leaks"), each("public-no-vary", "leaks")
    cat = each("correct", "catalog hit ratio")
    saved = {d: 1 - table[d]["correct"]["backend requests"] / table[d]["correct"]["requests"] for d in DESIGNS}
    private_hits = each("correct", "personal hit ratio")
    vary_hits = each("public+vary", "personal hit ratio")
    vary_copies = each("public+vary", "stored /me copies")
    right = {d: table[d]["correct"]["personal answers right"] for d in DESIGNS}
    pairs = {d: table[d]["correct"]["personal answer pairs"] for d in DESIGNS}
    checks: dict[str, bool] = {}
    for d in DESIGNS:
        c = table[d]["correct"]
        checks |= {
            f"{d}: a correct shared cache serves the public catalog (hit ratio >= 0.7, few requests reach the server)":
                cat[d] >= 0.7 and c["catalog requests reaching the server"] <= 0.2 * c["catalog requests"]
                and c["backend requests"] < c["requests"],
            f"{d}: a stale catalog is revalidated with If-None-Match (the server answers 304)":
                bool(c["revalidated with 304"]),
            f"{d}: {C_PERSONAL}":
                right[d] == pairs[d] and correct[d] == 0 and private_hits[d] == 0,
            f"{d}: {C_LEAKS}": bad[d] > 0,
            f"{d}: {C_NO_VARY}": no_vary[d] > 0,
            f"{d}: marked public with Vary, per-user answers stay per user (one stored copy per credential)":
                table[d]["public+vary"]["leaks"] == 0 and vary_copies[d] >= n_users,
        }
    checks[C_PER_USER] = bad["stateless"] == 0 and no_vary["stateless"] == 0
    checks[C_CATALOG_ALIKE] = abs(cat["stateful"] - cat["stateless"]) <= 0.1
    checks[C_MORE_COPIES] = vary_copies["stateless"] > vary_copies["stateful"]
    claims = judged(CLAIMS, {
        "stateful": (f"A misconfigured cache served another user's data {bad['stateful']} times to stateful "
                     f"users and {bad['stateless']} times to stateless ones. "
                     + ("The care is owed to per-user answers, not to session data: the same headers (private, "
                        "Vary) decide it in both designs." if bad["stateless"] and no_vary["stateless"] else
                        "Here only the session design needed the headers to get it right.")),
        "stateless": (("Without session state the caching rules were the same: " if bad["stateless"] else "")
                      + f"the public catalog hit "
                      f"{cat['stateless']:.0%} of the time (stateful {cat['stateful']:.0%}), per-user answers "
                      f"leaked {bad['stateless']} times through a misconfigured cache and {no_vary['stateless']} "
                      f"times without Vary, and marked public with Vary they needed {vary_copies['stateless']} "
                      f"stored copies of /me against {vary_copies['stateful']} for sessions."),
        "4c": (f"Through a correct cache, {right['stateful']} of {pairs['stateful']} personalised answer "
               f"pairs were the user's own and current with sessions, {right['stateless']} of "
               f"{pairs['stateless']} with tokens"
               + (": what a user did before tailors an answer whether a session or the token carries it."
                  if right["stateless"] == pairs["stateless"] else ".")),
    })
    reach = {d: f"{table[d]['correct']['catalog requests reaching the server']} of "
                f"{table[d]['correct']['catalog requests']}" for d in DESIGNS}
    reading = (
        f"Through a correct shared cache the public catalog hit {cat['stateful']:.0%} (stateful) and "
        f"{cat['stateless']:.0%} (stateless) of the time: {reach['stateful']} and {reach['stateless']} catalog "
        f"requests reached the server; per-user answers got {private_hits['stateful']:.0%} and "
        f"{private_hits['stateless']:.0%} hits. A cache that ignores the headers served another user's data "
        f"{bad['stateful']} times (stateful) and {bad['stateless']} times (stateless); answers marked public without "
        f"Vary leaked {no_vary['stateful']} and {no_vary['stateless']} times. Marked public with Vary, per-user "
        f"answers hit only for the same credential: {vary_copies['stateful']} stored copies of /me (one per cookie) "
        f"against {vary_copies['stateless']} (one per token, as every cart change mints a new token), hit ratio "
        f"{vary_hits['stateful']:.0%} against {vary_hits['stateless']:.0%}."
    )
    measurements: dict[str, Any] = {
        "users x rounds": f"{n_users} x {n_rounds}",
        "catalog hit ratio (correct cache)": cat,
        "catalog requests reaching the server (correct cache)": reach,
        "all server requests saved (correct cache)": saved,
        "per-user hit ratio, private": private_hits,
        "per-user hit ratio, public+Vary": vary_hits,
        "stored /me copies, public+Vary": vary_copies,
        "personal answers right (correct cache)": right,
        "leaks, misconfigured cache": bad,
        "leaks, correct cache": correct,
        "leaks, public without Vary": no_vary,
        "stale own carts, misconfigured cache": each("misconfigured", "stale own carts"),
    }
    return Evidence(row=ROW, measurements=measurements, checks=checks, claims=claims, reading=reading,
                    seconds=seconds, extra={"table": table, "users": n_users, "rounds": n_rounds, "key_numbers": {
                        "leaks, misconfigured cache (stateful / stateless)": f"{bad['stateful']} / {bad['stateless']}",
                        "leaks, correct cache (stateful / stateless)":
                            f"{correct['stateful']} / {correct['stateless']}",
                        "catalog hit ratio (stateful / stateless)": f"{cat['stateful']:.0%} / {cat['stateless']:.0%}",
                    }})


def summary(ev: Evidence) -> str:
    """The per-set-up numbers as a plain-text table: one line per set-up and design."""
    table = ev.extra["table"]
    cols = (("requests", "sent"), ("backend requests", "to server"), ("catalog hit ratio", "catalog hits"),
            ("personal hit ratio", "per-user hits"), ("leaks", "leaks"), ("stale own carts", "stale carts"),
            ("stored /me copies", "/me copies"))
    lines = [f"{'set-up, design':<26}" + "".join(f"{label:>14}" for _, label in cols)]
    for setup in SETUPS:
        for design in DESIGNS:
            cells = "".join(f"{_cell(table[design][setup][key]):>14}" for key, _ in cols)
            lines.append(f"{setup + ', ' + design:<26}{cells}")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, float) else str(value)
