"""Transaction integrity: does either design keep a multi-step purchase correct by itself?

The source text says a stateful design "ensures transaction integrity by maintaining session context",
and a stateless one keeps transactions "isolated, ensuring integrity at request level". A shop
adds a checkout (plugin :func:`~statelab.shop.plugins.checkout`): add items,
``POST /checkout/start`` (a snapshot of the cart), ``POST /checkout/confirm`` (an order). Orders
are business data, stored on the server in every design (:class:`~statelab.shop.plugins.OrderBook`).
The experiment then does what real users and networks do, on the four designs of
:data:`statelab.experiments.DESIGNS`:

1. **Concurrent updates of one cart**: 8 browser tabs add to one cart at once. A session store
   that updates with a naive read-modify-write (:class:`~statelab.shop.sessions.NaiveStore`: read the
   whole session, work, write it all back, which is what framework session middleware such as Flask-Session
   does by default: a GET when the request starts, a plain SET of the whole session when it ends)
   loses updates; ``MemoryStore`` (a lock), the shared store (Valkey's ``WATCH``/``MULTI``/``EXEC`` where Valkey
   can run, else ``SqliteStore``'s ``BEGIN IMMEDIATE``) and the shared
   cart table (one transaction per change) lose none. With the cart in the token each tab gets a
   token holding only its own add: the browser keeps the last one, so the others are lost by design.
2. **A retried confirm** (the same request sent again after a timeout) and a **double-click**
   (two confirms at once): with the checkout in the token the server cannot tell a repeat, and
   creates a second order, until an ``Idempotency-Key`` remembered server-side
   (:class:`~statelab.shop.plugins.IdempotencyKeys`) stops it; a session, or a cart in the
   database, is consumed by the first confirm, which stops a duplicate only if that update is atomic.

One rule judges both halves, on like-for-like designs: each half's production design (session + shared store;
token + cart in db) must keep every add and make one order per checkout, and each half's worst common variant
(the naive session store; the cart in the token) shows the limit (:data:`PRODUCTION`, :data:`WORST`).
"""

from __future__ import annotations

import http.client
import json
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..production.redis import RedisServer, RedisStore
from ..service import cleanup
from ..shop.plugins import IdempotencyKeys, OrderBook, checkout
from ..shop.server import Server
from ..shop.sessions import MemoryStore, NaiveStore, SqliteStore
from ..topology.cluster import shared_store
from . import DESIGNS, Evidence, Judgement, checks, conditions, judged, progress, record

ROW = "transaction_integrity"
TABS = 8  # concurrent requests on one cart
NAIVE = "session + naive store"
KEYED = "token + cart in token + Idempotency-Key"
STORE, IN_TOKEN, IN_DB = "session + shared store", "token + cart in token", "token + cart in db"

#: The one rule both halves are judged by: each half's production design must keep the purchase correct
#: (``needs``), and each half's worst common variant shows the limit (``limit``). Stateful: sessions in a shared
#: store updated atomically, and the naive read-modify-write that framework session middleware does by default.
#: Stateless: the token with the cart in the database, and the token that carries the cart.
PRODUCTION = {"stateful": STORE, "stateless": IN_DB}
WORST = {"stateful": NAIVE, "stateless": IN_TOKEN}

CHECKS = checks("""
store_kept, mechanism: session + shared store (an atomic update): no concurrent add was lost
store_one_order, mechanism: session + shared store: a retried or double-clicked confirm made one order
db_kept, mechanism: token + cart in db (one transaction per change): no concurrent add was lost
db_one_order, mechanism: token + cart in db: a retried or double-clicked confirm made one order
naive_lost >= 1: session + naive store (read, work, write back): at least {t} concurrent add was lost
naive_duplicated >= 1: session + naive store: at least {t} double-clicked confirm made two orders
token_lost >= 1, mechanism: token + cart in token: at least {t} concurrent add was lost (the browser keeps one token)
token_own_only, mechanism: token + cart in token: each concurrent add got a token holding only its own add
token_duplicated == 2, mechanism: token + cart in token: a retried confirm made {t} orders
memory_kept, mechanism: session + memory (a lock): no concurrent add lost, one order per checkout
keyed_once, mechanism: an Idempotency-Key remembered on the server made one order (retry and double-click)
""")


# --------------------------------------------------------------------------- a lean browser

class _Tab:
    """One browser tab: plain http.client (lean, for concurrency), holding a cookie or a token."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.cookie: str | None = None
        self.token: str | None = None

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             token: str | None = None) -> tuple[int, dict[str, Any]]:
        send = {"Content-Type": "application/json"}
        if self.cookie:
            send["Cookie"] = self.cookie
        if token or self.token:
            send["Authorization"] = f"Bearer {token or self.token}"
        send.update(headers or {})
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            conn.request(method, path, body=json.dumps(body if body is not None else {}), headers=send)
            response = conn.getresponse()
            raw = response.read()
            cookie = response.getheader("Set-Cookie")
            if cookie:
                self.cookie = cookie.split(";", 1)[0]
            try:
                data = json.loads(raw)
            except ValueError:
                data = {}
            data = data if isinstance(data, dict) else {}
            if token is None and isinstance(data.get("token"), str):
                self.token = data["token"]  # like a single-page app: keep the newest token
            return response.status, data
        except (OSError, http.client.HTTPException) as e:
            return 0, {"error": f"request failed ({type(e).__name__})"}
        finally:
            conn.close()

    def login(self, user: str) -> None:
        status, body = self.call("POST", "/login", {"user": user})
        if status != 200:
            raise RuntimeError(f"login failed: {status} {body}")


def _all_at_once(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``n`` threads released together; return the results in order."""
    results: list[Any] = [None] * n
    gate = threading.Barrier(n)

    def go(i: int) -> None:
        try:
            gate.wait(timeout=5)
        except threading.BrokenBarrierError:
            pass
        results[i] = work(i)

    threads = [threading.Thread(target=go, args=(i,), name=f"statelab-tab-{i}", daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def _qty(cart: Any, item: str = "book") -> int:
    return sum(line.get("qty", 0) for line in cart if isinstance(line, dict) and line.get("item") == item) \
        if isinstance(cart, list) else 0



# --------------------------------------------------------------------------- the measurements

def _server(case: str, stores: dict[str, Any], plugins: list[Any] = ()) -> Server:
    """One server of ``case`` (a design, or the naive store / keyed variants), started."""
    design = "session + memory" if case == NAIVE else "token + cart in token" if case == KEYED else case
    options = dict(DESIGNS[design])
    if options["mode"] == "stateful":
        options["store"] = stores[case]()
    server = Server(name=f"shop-{case.replace(' ', '')}", plugins=list(plugins), **options)
    server.start()
    return server


def lost_updates(url: str, adds: int, tabs: int = TABS) -> dict[str, int]:
    """Each round, ``tabs`` tabs add 1 book at once with the user's current credential; how many adds survive?

    A tab sends the cookie or token the browser holds; when answers carry a new token, the browser
    keeps whichever it handled last (as a single-page app storing its token does).
    """
    owner = _Tab(url)
    owner.login("alice")
    answered = own_only = 0
    for _ in range(adds):
        base = _qty(owner.call("GET", "/cart")[1].get("cart"))

        def tab(_: int, token: str | None = owner.token) -> tuple[int, dict[str, Any]]:
            return owner.call("POST", "/cart", {"item": "book", "qty": 1}, token=token)

        answers = _all_at_once(tabs, tab)
        ok = [body for status, body in answers if status == 200]
        answered += len(ok)
        own_only += sum(_qty(body.get("cart")) == base + 1 for body in ok)
        tokens = [body["token"] for body in ok if isinstance(body.get("token"), str)]
        if tokens:
            owner.token = tokens[-1]  # the browser stores whichever answer it handled last
    kept = _qty(owner.call("GET", "/cart")[1].get("cart"))
    return {"adds answered 200": answered, "books in cart": kept, "lost": answered - kept,
            "answers holding only their own add": own_only}


def confirm_twice(url: str, orders: OrderBook, user: str, *, concurrent: bool, idempotent: bool) -> dict[str, Any]:
    """``user`` starts a checkout, then sends the same confirm twice: a retry, or two at once (a double-click)."""
    client = _Tab(url)
    client.login(user)
    client.call("POST", "/cart", {"item": "book", "qty": 1})
    status, body = client.call("POST", "/checkout/start")
    if status != 200:
        raise RuntimeError(f"checkout did not start: {status} {body}")
    headers = {"Idempotency-Key": f"confirm-{secrets.token_hex(4)}"} if idempotent else {}
    token = client.token

    def confirm(_: int) -> tuple[int, dict[str, Any]]:
        return client.call("POST", "/checkout/confirm", headers=headers, token=token)

    answers = _all_at_once(2, confirm) if concurrent else [confirm(0), confirm(1)]
    ids = {body["order"]["order"] for status, body in answers if status == 201 and "order" in body}
    return {"orders": len(orders.of(user)), "statuses": [a[0] for a in answers], "distinct order ids": len(ids)}


def duplicate_orders(url: str, orders: OrderBook, *, idempotent: bool = False, trials: int = 3) -> dict[str, Any]:
    """A retried confirm, then ``trials`` double-clicked confirms, each by a fresh user."""
    retry = confirm_twice(url, orders, "retry", concurrent=False, idempotent=idempotent)
    double = [confirm_twice(url, orders, f"double-{i}", concurrent=True, idempotent=idempotent)
              for i in range(trials)]
    return {"retry": retry, "double": [d["orders"] for d in double]}


LOST_CASES = (NAIVE, *DESIGNS)
ORDER_CASES = (NAIVE, *DESIGNS, KEYED)


def run(*, quick: bool = False, adds: int | None = None, trials: int | None = None) -> Evidence:
    """Measure lost updates (8 concurrent tabs on one cart) and duplicate orders (retry, double-click).

    ``adds``: rounds of 8 concurrent adds per design; ``trials``: how many double-clicks each
    case gets (a race can be lost by luck, so it is tried more than once).
    """
    n_adds = adds if adds is not None else (1 if quick else 3)
    n_trials = trials if trials is not None else (2 if quick else 3)
    if not 1 <= n_adds <= 50 or not 1 <= n_trials <= 20:
        raise ValueError("adds must be 1 to 50 and trials 1 to 20")
    began = time.perf_counter()
    lost: dict[str, dict[str, int]] = {}
    retry: dict[str, dict[str, Any]] = {}
    double: dict[str, list[int]] = {}
    store_kind = shared_store()  # the session + shared store design: Valkey where one can run, else SQLite
    with cleanup.folder("statelab-txn-") as tmp:
        opened: list[Any] = []
        valkey = RedisServer(name="valkey-txn") if store_kind == "valkey" else None

        def shared() -> Any:
            """A fresh shared store: Valkey keys under a prefix of their own (WATCH/MULTI/EXEC), or a SQLite file."""
            opened.append(RedisStore(valkey.url) if valkey is not None
                          else SqliteStore(Path(tmp) / f"sessions-{len(opened)}.sqlite3"))
            return opened[-1]

        stores = {NAIVE: NaiveStore, "session + memory": MemoryStore, STORE: shared}
        try:
            steps = [("lost", c) for c in LOST_CASES] + [("orders", c) for c in ORDER_CASES]
            for kind, case in progress(steps, "transactions"):
                if kind == "lost":
                    with _server(case, stores) as server:
                        lost[case] = lost_updates(server.url, n_adds)
                    continue
                orders = OrderBook()
                with _server(case, stores, [checkout(orders, IdempotencyKeys())]) as server:
                    result = duplicate_orders(server.url, orders, idempotent=case == KEYED, trials=n_trials)
                retry[case], double[case] = result["retry"], result["double"]
        finally:
            for store in opened:
                store.close()
            if valkey is not None:
                valkey.stop()
    return record(_evidence(lost, retry, double, n_adds, n_trials, time.perf_counter() - began, store_kind))


#: Which checks judge each claim (see :class:`~statelab.experiments.Judgement`), by one rule for both halves:
#: the half's production design must keep every add and make one order per checkout (``needs``); its worst
#: common variant losing adds or duplicating an order is the limit (``limit``). ``_evidence()`` computes the checks
#: and adds to each claim the sentence of what was measured.
CLAIMS = {
    "stateful": Judgement(supports=(CHECKS.store_kept, CHECKS.store_one_order), qualifies=(CHECKS.naive_lost,
                                                                                           CHECKS.naive_duplicated)),
    "stateless": Judgement(supports=(CHECKS.db_kept, CHECKS.db_one_order), qualifies=(CHECKS.token_lost,
                                                                                      CHECKS.token_duplicated)),
}


def _evidence(lost: dict[str, dict[str, int]], retry: dict[str, dict[str, Any]], double: dict[str, list[int]],
              n_adds: int, n_trials: int, seconds: float, store_kind: str = "sqlite") -> Evidence:
    retry_orders = {case: r["orders"] for case, r in retry.items()}
    dup_trials = {case: sum(n > 1 for n in runs) for case, runs in double.items()}

    def kept(case: str) -> bool:
        return lost[case]["lost"] == 0 and lost[case]["adds answered 200"] > 0

    def one_order(case: str) -> bool:
        return retry_orders[case] == 1 and dup_trials[case] == 0

    def adds(case: str) -> str:
        return f"{lost[case]['books in cart']} of {lost[case]['adds answered 200']} adds kept"

    def orders(case: str) -> str:
        return f"retry: {retry_orders[case]} order(s); double-clicks with 2 orders: {dup_trials[case]} of {n_trials}"

    def held(case: str) -> str:
        return "kept" if kept(case) and one_order(case) else "did not keep"

    token = lost[IN_TOKEN]
    checks = [
        CHECKS.store_kept(ok=kept(STORE), shown=adds(STORE)),
        CHECKS.store_one_order(ok=one_order(STORE), shown=orders(STORE)),
        CHECKS.db_kept(ok=kept(IN_DB), shown=adds(IN_DB)),
        CHECKS.db_one_order(ok=one_order(IN_DB), shown=orders(IN_DB)),
        CHECKS.naive_lost(lost[NAIVE]["lost"], shown=f"{lost[NAIVE]['lost']} lost, {adds(NAIVE)} (needs >= 1)"),
        CHECKS.naive_duplicated(dup_trials[NAIVE], shown=f"{dup_trials[NAIVE]} of {n_trials} (needs >= 1)"),
        CHECKS.token_lost(token["lost"], shown=f"{token['lost']} lost, {adds(IN_TOKEN)} (needs >= 1)"),
        CHECKS.token_own_only(ok=token["answers holding only their own add"] == token["adds answered 200"] > 0,
                              shown=f"{token['answers holding only their own add']} of {token['adds answered 200']}"),
        CHECKS.token_duplicated(retry_orders[IN_TOKEN]),
        CHECKS.memory_kept(ok=kept("session + memory") and one_order("session + memory"),
                           shown=f"{adds('session + memory')}; {orders('session + memory')}"),
        CHECKS.keyed_once(ok=one_order(KEYED) and retry[KEYED]["distinct order ids"] == 1, shown=orders(KEYED)),
    ]
    total = lost[NAIVE]["adds answered 200"]
    claims = judged(CLAIMS, {
        "stateful": (f"With the session in a shared store updated atomically, session context {held(STORE)} the "
                     f"purchase correct: {adds(STORE)}, and a retried confirm made {retry_orders[STORE]} order(s). "
                     f"The context "
                     f"did not do it by itself: a naive read-modify-write of the whole session, which framework "
                     f"session middleware does by default, kept {lost[NAIVE]['books in cart']} of {total} "
                     f"concurrent adds and duplicated {dup_trials[NAIVE]} of {n_trials} double-clicked orders."),
        "stateless": (f"With the cart in the database, updated atomically, isolated requests {held(IN_DB)} the "
                      f"purchase correct: {adds(IN_DB)}, and a retried confirm made {retry_orders[IN_DB]} order(s). "
                      f"The "
                      f"integrity came from that state on the server, not from the isolation: with the cart in the "
                      f"token the browser kept {token['books in cart']} of {token['adds answered 200']} concurrent "
                      f"adds and a retried confirm made {retry_orders[IN_TOKEN]} orders, until an Idempotency-Key "
                      f"record on the server made it {retry_orders[KEYED]}."),
    })
    reading = (
        f"{TABS} tabs added books to one cart at once, {n_adds} round(s) per case: "
        + ", ".join(f"{c} kept {v['books in cart']} of {v['adds answered 200']}" for c, v in lost.items())
        + ". A retried confirm made " + ", ".join(f"{retry_orders[c]} ({c})" for c in retry_orders)
        + f" orders; a double-click made two orders in {dup_trials[NAIVE]} of {n_trials} tries on the naive "
        f"store and in {dup_trials[IN_TOKEN]} of {n_trials} with the cart in the token."
    )
    measurements: dict[str, Any] = {
        "books kept of adds answered": {c: f"{v['books in cart']} of {v['adds answered 200']}"
                                        for c, v in lost.items()},
        "lost updates": {c: v["lost"] for c, v in lost.items()},
        "orders after a retried confirm": retry_orders,
        f"double-clicks that made 2 orders (of {n_trials})": dup_trials,
    }
    where = conditions(
        designs=[*DESIGNS, NAIVE, KEYED], servers="one server per case, a thread of this process",
        crowd=f"one user, {TABS} tabs at once, {n_adds} round(s); {n_trials} double-clicks per case",
        **{"shared store": ("Valkey (a server process on this machine; WATCH/MULTI/EXEC)" if store_kind == "valkey"
                            else "a SQLite file (BEGIN IMMEDIATE); Valkey is not available here")
                           + "; the cart table of token + cart in db: a SQLite file (one transaction per change)",
           "rule": "each half by its production design (needs: "
                   + " and ".join(PRODUCTION.values()) + ") and its worst common variant (limit: "
                   + " and ".join(WORST.values()) + ")"})
    return Evidence(row=ROW, measurements=measurements, checks=checks, claims=claims, reading=reading,
                    seconds=seconds, conditions=where,
                    extra={"lost": lost, "retry": retry, "double": double, "trials": n_trials})


#: Why the measured answer is what it is: the "you predicted; you measured" cell of notebook 09 shows it.
WHY = ("each tab's answer is a token holding the old cart plus its own book; the browser keeps one token, so the last "
       "answer wins.")


def answer(ev: Evidence) -> str:
    """Which of notebook 09's prediction choices this run measured: how many of eight concurrent adds a cart in the
    token kept."""
    token = ev.extra["lost"]["token + cart in token"]
    if token["books in cart"] == 0:
        return "none"
    return "all eight" if token["lost"] == 0 else "fewer than eight"
