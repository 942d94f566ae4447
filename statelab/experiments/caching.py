"""Caching strategies: is response caching simpler when the server keeps no session?

The source text says stateful caching "may be complex due to session data" and stateless caching is
"simplified ... without session state". This experiment puts a shared HTTP cache
(:class:`statelab.topology.cache.SharedCache`, which follows RFC 9111) in front of a server of each design
and lets a few users shop through it, under five set-ups:

``correct``          a correct shared cache; the app marks per-user answers ``private`` (as it does)
``max-age only``     a correct cache; per-user answers sent with ``Cache-Control: max-age=60`` and no
                     ``private``, no ``Vary``: the commonest bug, a lifetime meant for the browser's own cache
``misconfigured``    a cache that ignores the headers and keys by url alone
``public+vary``      a correct cache; per-user answers marked ``public`` but with ``Vary: Cookie`` or
                     ``Vary: Authorization`` (the cache keeps one copy per credential)
``public-no-vary``   a correct cache; per-user answers marked ``public`` and no ``Vary`` (an origin bug)

``max-age only`` decides the halves. RFC 9111 section 3.5 says a shared cache must not reuse an answer to a
request carrying ``Authorization`` unless the answer says ``public``, ``s-maxage`` or ``must-revalidate``;
a ``Cookie`` gets no such rule. So the same bug leaks the cookie shop's carts and not the bearer-token
shop's. A third shop, stateless but with the cart in Flask's signed cookie, runs that set-up too: it shows
whether the difference comes from the session state or from the header that carries the credential.

It counts, from the answers each user got: cache hits on the public catalog and on the per-user
answers (``/me``, ``/cart``), requests the cache stepped aside for, requests that reached the server, and
*leaks*: answers carrying another user's identity or cart. Benefit 4c, personalised answers, is judged from
whether every user got their own answers through a correct cache.
"""

from __future__ import annotations

import time
from typing import Any

from .. import Client, Server
from ..shop.plugins import personal_headers
from ..topology.cache import SharedCache
from . import Evidence, Judgement, checks, conditions, judged, progress, record

ROW = "caching"
DESIGNS = ("stateful", "stateless")
#: The stateless shop that carries its credential in a cookie (Flask's signed cookie, the cart inside).
SIGNED_COOKIE = "cookie"
#: What each server mode is, in the words the conditions and tables use.
DESIGN_NAMES = {"stateful": "session + memory (session id in a cookie)",
                "stateless": "token + cart in token (Authorization: Bearer)",
                SIGNED_COOKIE: "signed cookie (stateless: the cart in Flask's cookie)"}
MAX_AGE = "max-age only"
SETUPS: dict[str, tuple[bool, str]] = {  # name -> (cache honours headers, what the app marks per-user answers)
    "correct": (True, "private"),
    MAX_AGE: (True, "max-age"),
    "misconfigured": (False, "private"),
    "public+vary": (True, "public+vary"),
    "public-no-vary": (True, "public"),
}
USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
#: The hit ratio a correct cache must reach on the public catalog (each user reads it twice a round).
CATALOG_HITS = 0.7


CHECKS = checks("""
{each}_catalog_hits >= CATALOG_HITS, mechanism: {each}: a correct shared cache serves the public catalog (hit ratio at
    least {t})
{each}_revalidates, mechanism: {each}: a stale catalog is revalidated with If-None-Match (the server answers 304)
{each}_personal_own, mechanism: {each}: through a correct cache, with per-user answers marked private, each user's /me
    and /cart are their own and current
{each}_misconfigured_leaks, mechanism: {each}: a cache that ignores the headers serves one user's identity or cart to
    another
{each}_public_no_vary_leaks, mechanism: {each}: per-user answers marked public without Vary leak even through a
    correct cache
{each}_vary_per_credential, mechanism: {each}: marked public with Vary, per-user answers stay per user (one stored
    copy per credential)
stateful_max_age_leaks, mechanism: stateful: sent with max-age=60 and no private, no Vary, per-user answers are stored
    by a correct shared cache and served to other users (a Cookie gets no protection in RFC 9111)
stateless_max_age_safe, mechanism: stateless: with the same headers the correct cache steps aside for every per-user
    request carrying Authorization (RFC 9111 section 3.5): nothing stored, no leak
signed_cookie_max_age_leaks, mechanism: a stateless signed cookie leaks under the same headers: the cache sees which
    header carries the credential, not whether the server keeps a session
more_copies_with_vary: marked public with Vary, the token shop stores more copies of /me (a new token, so a new cache
    key, at every cart change)
""", each=DESIGNS, CATALOG_HITS=CATALOG_HITS)


def _shop(users: list[str], url: str, rounds: int) -> dict[str, Any]:
    """Each user logs in, then each round adds one of their own item and reads catalog, /me, /cart twice.

    Users take turns, as they would on a real site. Every answer is checked against who asked.
    """
    clients = {u: Client(url) for u in users}
    own = {u: f"item-{u}" for u in users}
    tally = {"requests": 0, "leaks": 0, "stale": 0, "personal_ok": 0, "personal_gets": 0,
             "catalog_hits": 0, "catalog_gets": 0, "personal_hits": 0, "personal_bypass": 0}
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
                    tally["personal_bypass"] += ex.headers.get("X-Cache") == "BYPASS"
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
        "per-user answers the cache stepped aside for": tally["personal_bypass"],
        "leaks": tally["leaks"],
        "stale own carts": tally["stale"],
        "personal answers right": tally["personal_ok"],
        "personal answer pairs": tally["personal_gets"] // 2,  # /me and /cart are checked as one pair
        "stored /me copies": entries.get("/me", 0),
        "stored per-user copies": sum(entries.get(p, 0) for p in ("/me", "/cart")),
        "stored /catalog copies": entries.get("/catalog", 0),
        "revalidated with 304": int(revalidated and cache.stats["upstream_304"] > 0),
    }


def run(*, quick: bool = False, users: int | None = None, rounds: int | None = None) -> Evidence:
    """Shop through a shared cache in front of a stateful and a stateless server, under five set-ups.

    Also runs the ``max-age only`` set-up against a stateless shop whose credential is a signed cookie.
    Tests the row by counting, per design: catalog hit ratio, per-user hit ratio, requests the cache
    stepped aside for, requests that reached the server, and answers that carried another user's data.
    """
    n_users = users if users is not None else (3 if quick else 4)
    n_rounds = rounds if rounds is not None else 2
    if not 2 <= n_users <= len(USERS) or not 1 <= n_rounds <= 20:
        raise ValueError(f"users must be 2 to {len(USERS)} and rounds 1 to 20")
    names = list(USERS[:n_users])
    began = time.perf_counter()
    table: dict[str, dict[str, dict[str, Any]]] = {d: {} for d in (*DESIGNS, SIGNED_COOKIE)}
    steps = [(d, s) for d in DESIGNS for s in SETUPS] + [(SIGNED_COOKIE, MAX_AGE)]
    running: list[Any] = []
    rigs: dict[str, tuple[Server, dict[str, str], dict[bool, SharedCache]]] = {}
    try:
        for design in (*DESIGNS, SIGNED_COOKIE):
            policy = {"personal": "private"}
            server = Server(design, name=f"{design}-shop", plugins=[personal_headers(policy)])
            running.append(server.start())
            caches = {honour: SharedCache(server, honour_headers=honour, start=False)
                      for honour in ((True, False) if design in DESIGNS else (True,))}
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
#: and adds to each claim the sentence of what was measured. One rule for both halves: each is decided by what
#: the same set-up (``max-age only``, through a correct cache) did to its own design's per-user answers, and
#: both are qualified by the same three facts: a stateless signed cookie leaks like a session cookie, and a
#: cache that ignores the headers, or answers marked public without Vary, leak the token shop's answers too.
SHARED_LIMITS = (CHECKS.signed_cookie_max_age_leaks, CHECKS.stateless_misconfigured_leaks,
                 CHECKS.stateless_public_no_vary_leaks)
CLAIMS = {
    "stateful": Judgement(supports=(CHECKS.stateful_max_age_leaks,), qualifies=SHARED_LIMITS),
    "stateless": Judgement(supports=(CHECKS.stateless_max_age_safe,), qualifies=SHARED_LIMITS),
    "4c": Judgement(supports=(CHECKS.stateful_personal_own,), qualifies=(CHECKS.stateless_personal_own,)),
}


def _evidence(table: dict[str, dict[str, dict[str, Any]]], n_users: int, n_rounds: int, seconds: float) -> Evidence:
    def each(setup: str, key: str) -> dict[str, Any]:
        return {d: table[d][setup][key] for d in DESIGNS}

    correct, bad, no_vary = each("correct", "leaks"), each("misconfigured", "leaks"), each("public-no-vary", "leaks")
    max_age = {d: table[d][MAX_AGE] for d in (*DESIGNS, SIGNED_COOKIE)}
    aged = {d: max_age[d]["leaks"] for d in max_age}
    cat = each("correct", "catalog hit ratio")
    saved = {d: 1 - table[d]["correct"]["backend requests"] / table[d]["correct"]["requests"] for d in DESIGNS}
    private_hits = each("correct", "personal hit ratio")
    vary_hits = each("public+vary", "personal hit ratio")
    vary_copies = each("public+vary", "stored /me copies")
    right = {d: table[d]["correct"]["personal answers right"] for d in DESIGNS}
    pairs = {d: table[d]["correct"]["personal answer pairs"] for d in DESIGNS}
    asked = max_age["stateless"]["per-user answers"]
    aside = max_age["stateless"]["per-user answers the cache stepped aside for"]
    outcomes = []
    for d in DESIGNS:
        c, v = table[d]["correct"], table[d]["public+vary"]
        outcomes += [
            CHECKS[f"{d}_catalog_hits"](cat[d], shown=f"{cat[d]:.0%} of {c['catalog requests']} catalog requests "
                                     f"(needs at least {CATALOG_HITS:.0%})"),
            CHECKS[f"{d}_revalidates"](ok=bool(c["revalidated with 304"]),
                                       shown=f"{c['revalidated with 304']} revalidated"),
            CHECKS[f"{d}_personal_own"](ok=right[d] == pairs[d] and correct[d] == 0 and private_hits[d] == 0,
                        shown=f"{right[d]} of {pairs[d]} pairs own and current, {correct[d]} leaks, "
                              f"{private_hits[d]:.0%} hits"),
            CHECKS[f"{d}_misconfigured_leaks"](ok=bad[d] > 0,
                                               shown=f"{bad[d]} leaks in "
                                                     f"{table[d]['misconfigured']['per-user answers']} "
                                                  "per-user answers"),
            CHECKS[f"{d}_public_no_vary_leaks"](ok=no_vary[d] > 0, shown=f"{no_vary[d]} leaks"),
            CHECKS[f"{d}_vary_per_credential"](ok=v["leaks"] == 0 and vary_copies[d] >= n_users,
                    shown=f"{v['leaks']} leaks, {vary_copies[d]} copies of /me for {n_users} users"),
        ]
    outcomes += [
        CHECKS.stateful_max_age_leaks(ok=aged["stateful"] > 0 and max_age["stateful"]["personal hit ratio"] > 0,
                                      shown=f"{aged['stateful']} leaks, "
                                            f"{max_age['stateful']['personal hit ratio']:.0%} of "
                                            f"per-user answers served by the cache"),
        CHECKS.stateless_max_age_safe(ok=aged["stateless"] == 0 and aside == asked
                                      and max_age["stateless"]["stored per-user copies"] == 0,
                                      shown=f"{aged['stateless']} leaks, stepped aside for {aside} of {asked} per-user "
                                            "requests, "
                                            f"{max_age['stateless']['stored per-user copies']} stored"),
        CHECKS.signed_cookie_max_age_leaks(ok=aged[SIGNED_COOKIE] > 0, shown=f"{aged[SIGNED_COOKIE]} leaks"),
        CHECKS.more_copies_with_vary(ok=vary_copies["stateless"] > vary_copies["stateful"],
                                     shown=f"{vary_copies['stateless']} against {vary_copies['stateful']}"),
    ]
    claims = judged(CLAIMS, {
        "stateful": (f"With the commonest header bug (max-age=60 on per-user answers, no private, no Vary) a correct "
                     f"shared cache served another user's data {aged['stateful']} times to the session shop's users"
                     + (f", and {aged[SIGNED_COOKIE]} times to a stateless shop whose credential is a signed cookie: "
                        "the care is owed to the cookie and to per-user answers, not to session data; private "
                        "fixes it in both." if aged[SIGNED_COOKIE] else
                        "; a stateless signed cookie did not leak here.")),
        "stateless": (f"With the same bug the bearer-token shop leaked {aged['stateless']} times: the cache stepped "
                      f"aside for {aside} of {asked} per-user requests, as RFC 9111 section 3.5 asks for requests "
                      "carrying Authorization. That default comes with the header, not with the missing session "
                      f"(a signed cookie leaked {aged[SIGNED_COOKIE]} times), and it is only a default: a cache that "
                      f"ignores the headers leaked the token shop's answers {bad['stateless']} times, answers marked "
                      f"public without Vary {no_vary['stateless']} times."),
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
        f"requests reached the server; per-user answers marked private got {private_hits['stateful']:.0%} and "
        f"{private_hits['stateless']:.0%} hits. Sent with max-age=60 alone, per-user answers leaked "
        f"{aged['stateful']} times from the session shop, {aged['stateless']} from the token shop and "
        f"{aged[SIGNED_COOKIE]} from the signed-cookie shop. A cache that ignores the headers served another "
        f"user's data {bad['stateful']} times (stateful) and {bad['stateless']} times (stateless); answers marked "
        f"public without Vary leaked {no_vary['stateful']} and {no_vary['stateless']} times. Marked public with "
        f"Vary, per-user answers hit only for the same credential: {vary_copies['stateful']} stored copies of /me "
        f"(one per cookie) against {vary_copies['stateless']} (one per token, as every cart change mints a new "
        f"token), hit ratio {vary_hits['stateful']:.0%} against {vary_hits['stateless']:.0%}."
    )
    measurements: dict[str, Any] = {
        "users x rounds": f"{n_users} x {n_rounds}",
        "catalog hit ratio (correct cache)": cat,
        "catalog requests reaching the server (correct cache)": reach,
        "all server requests saved (correct cache)": saved,
        "per-user hit ratio, private": private_hits,
        "leaks, max-age without private or Vary": {DESIGN_NAMES[d]: n for d, n in aged.items()},
        "per-user requests the cache stepped aside for, max-age": {
            d: f"{max_age[d]['per-user answers the cache stepped aside for']} of {max_age[d]['per-user answers']}"
            for d in max_age},
        "per-user hit ratio, public+Vary": vary_hits,
        "stored /me copies, public+Vary": vary_copies,
        "personal answers right (correct cache)": right,
        "leaks, misconfigured cache": bad,
        "leaks, correct cache": correct,
        "leaks, public without Vary": no_vary,
        "stale own carts, misconfigured cache": each("misconfigured", "stale own carts"),
    }
    crowd = f"{n_users} users x {n_rounds} rounds, taking turns (add an item, read catalog, /me, /cart twice)"
    return Evidence(row=ROW, measurements=measurements, checks=outcomes, claims=claims, reading=reading,
                    seconds=seconds, conditions=conditions(
                        designs=[DESIGN_NAMES[d] for d in (*DESIGNS, SIGNED_COOKIE)], crowd=crowd,
                        caches="statelab's SharedCache following RFC 9111, and one keyed by url alone"),
                    extra={"table": table, "users": n_users, "rounds": n_rounds, "key_numbers": {
                        "leaks, max-age without private (session / token / signed cookie)":
                            f"{aged['stateful']} / {aged['stateless']} / {aged[SIGNED_COOKIE]}",
                        "leaks, misconfigured cache (stateful / stateless)": f"{bad['stateful']} / {bad['stateless']}",
                        "leaks, correct cache (stateful / stateless)":
                            f"{correct['stateful']} / {correct['stateless']}",
                        "catalog hit ratio (stateful / stateless)": f"{cat['stateful']:.0%} / {cat['stateless']:.0%}",
                    }})


def summary(ev: Evidence) -> str:
    """The per-set-up numbers as a plain-text table: one line per set-up and design."""
    table = ev.extra["table"]
    cols = (("requests", "sent"), ("backend requests", "to server"), ("catalog hit ratio", "catalog hits"),
            ("personal hit ratio", "per-user hits"), ("per-user answers the cache stepped aside for", "stepped aside"),
            ("leaks", "leaks"), ("stale own carts", "stale carts"),
            ("stored /me copies", "/me copies"))
    lines = [f"{'set-up, design':<28}" + "".join(f"{label:>14}" for _, label in cols)]
    for setup in SETUPS:
        for design in (*DESIGNS, SIGNED_COOKIE):
            if setup in table.get(design, {}):
                cells = "".join(f"{_cell(table[design][setup][key]):>14}" for key, _ in cols)
                name = "signed cookie" if design == SIGNED_COOKIE else design
                lines.append(f"{setup + ', ' + name:<28}{cells}")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, float) else str(value)


#: Why the measured answer is what it is: the "you predicted; you measured" cell of notebook 07 shows it.
WHY = ("a shared cache may keep an answer with max-age, unless the request carried Authorization (RFC 9111 section "
       "3.5); a Cookie gets no such rule.")
_WHOSE = {(True, True): "alice's, from both shops", (False, False): "his own, from both shops",
          (True, False): "alice's from the cookie shop, his own from the token shop",
          (False, True): "his own from the cookie shop, alice's from the token shop"}


def answer(ev: Evidence) -> str:
    """Which of notebook 07's prediction choices this run measured: whose cart bob got from each shop's cache."""
    return _WHOSE[(ev.checks[CHECKS.stateful_max_age_leaks.id],
                   not ev.checks[CHECKS.stateless_max_age_safe.id])]   # (cookie shop, token shop)
