"""Transaction integrity: does either design keep a multi-step purchase correct by itself?

The seed says a stateful design "ensures transaction integrity by maintaining session context",
and a stateless one keeps transactions "isolated, ensuring integrity at request level". A shop
adds a checkout (plugin :func:`~statelab.shop.plugins.checkout`): add items,
``POST /checkout/start`` (a snapshot of the cart), ``POST /checkout/confirm`` (an order). Orders
are business data, stored on the server in every design (:class:`~statelab.shop.plugins.OrderBook`).
The experiment then does what real users and networks do, on the four designs of
:data:`statelab.experiments.DESIGNS`:

1. **Concurrent updates of one cart**: 8 browser tabs add to one cart at once. A session store
   that updates with a naive read-modify-write (:class:`~statelab.shop.sessions.NaiveStore`)
   loses updates; ``MemoryStore`` (a lock), ``SqliteStore`` (``BEGIN IMMEDIATE``) and the shared
   cart table (one transaction per change) lose none. With the cart in the token each tab gets a
   token holding only its own add: the browser keeps the last one, so the others are lost by design.
2. **A retried confirm** (the same request sent again after a timeout) and a **double-click**
   (two confirms at once): with the checkout in the token the server cannot tell a repeat, and
   creates a second order, until an ``Idempotency-Key`` remembered server-side
   (:class:`~statelab.shop.plugins.IdempotencyKeys`) stops it; a session, or a cart in the
   database, is consumed by the first confirm, which stops a duplicate only if that update is atomic.
"""

from __future__ import annotations

import http.client
import json
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..shop.plugins import IdempotencyKeys, OrderBook, checkout
from ..shop.server import Server
from ..shop.sessions import MemoryStore, NaiveStore, SqliteStore
from . import DESIGNS, Evidence, Judgement, judged, progress, record

ROW = "transaction_integrity"
TABS = 8  # concurrent requests on one cart
NAIVE = "session + naive store"
KEYED = "token + cart in token + Idempotency-Key"
DB_CHECK = "cart in the db: no concurrent update lost, and one order per checkout (an atomic update in the db)"

C_NAIVE_LOST = "a naive read-modify-write session store lost concurrent cart updates"
C_ATOMIC_KEPT = "atomic session stores (a lock, BEGIN IMMEDIATE) lost no concurrent update"
C_ATOMIC_ONE_ORDER = "atomic session stores: a retried or double-clicked confirm made one order"
C_NAIVE_DUPLICATED = "the naive session store duplicated a double-clicked order"
C_TOKEN_KEPT = "cart in the token: no concurrent update was lost"
C_TOKEN_ONE_ORDER = "cart in the token: a retried confirm made one order"
C_KEYED = "an Idempotency-Key remembered on the server stopped the duplicate (retry and double-click)"


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
    with tempfile.TemporaryDirectory(prefix="statelab-txn-", ignore_cleanup_errors=True) as tmp:
        opened: list[SqliteStore] = []

        def sqlite() -> SqliteStore:
            opened.append(SqliteStore(Path(tmp) / f"sessions-{len(opened)}.sqlite3"))
            return opened[-1]

        stores = {NAIVE: NaiveStore, "session + memory": MemoryStore, "session + shared store": sqlite}
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
    return record(_evidence(lost, retry, double, n_trials, time.perf_counter() - began))


#: Which checks judge each claim (see :class:`~statelab.experiments.Judgement`); ``_evidence()`` computes those checks
#: and adds to each claim the sentence of what was measured.
CLAIMS = {
    "stateful": Judgement(supports=(C_ATOMIC_KEPT, C_ATOMIC_ONE_ORDER), qualifies=(C_NAIVE_LOST, C_NAIVE_DUPLICATED)),
    "stateless": Judgement(supports=(C_TOKEN_KEPT, C_TOKEN_ONE_ORDER), qualifies=(C_KEYED, DB_CHECK)),
}


def _evidence(lost: dict[str, dict[str, int]], retry: dict[str, dict[str, Any]], double: dict[str, list[int]],
              n_trials: int, seconds: float) -> Evidence:
    retry_orders = {case: r["orders"] for case, r in retry.items()}
    dup_trials = {case: sum(n > 1 for n in runs) for case, runs in double.items()}
    sessions = ("session + memory", "session + shared store")
    token, db = "token + cart in token", "token + cart in db"
    checks = {
        C_NAIVE_LOST: lost[NAIVE]["lost"] > 0,
        C_ATOMIC_KEPT: all(lost[c]["lost"] == 0 and lost[c]["adds answered 200"] > 0 for c in sessions),
        C_ATOMIC_ONE_ORDER: all(retry_orders[c] == 1 and dup_trials[c] == 0 for c in sessions),
        C_NAIVE_DUPLICATED: dup_trials[NAIVE] > 0,
        C_TOKEN_KEPT: lost[token]["lost"] == 0,
        "cart in the token: each concurrent add got a token holding only its own add":
            lost[token]["answers holding only their own add"] == lost[token]["adds answered 200"] > 0,
        C_TOKEN_ONE_ORDER: retry_orders[token] == 1,
        C_KEYED: retry_orders[KEYED] == 1 and retry[KEYED]["distinct order ids"] == 1 and dup_trials[KEYED] == 0,
        DB_CHECK:
            lost[db]["lost"] == 0 and lost[db]["adds answered 200"] > 0 and retry_orders[db] == 1
            and dup_trials[db] == 0,
    }
    total = lost[NAIVE]["adds answered 200"]
    claims = judged(CLAIMS, {
        "stateful": (f"Session context kept the purchase correct only because the store updated it atomically: "
                     f"a naive read-modify-write kept {lost[NAIVE]['books in cart']} of {total} concurrent adds "
                     f"and duplicated {dup_trials[NAIVE]} of {n_trials} double-clicked orders."),
        "stateless": (f"Isolated requests kept nothing together: with the cart in the token the browser kept "
                      f"{lost[token]['books in cart']} of {lost[token]['adds answered 200']} concurrent adds and a "
                      f"retried confirm made {retry_orders[token]} orders. Integrity came from state on the server: "
                      f"an Idempotency-Key record ({retry_orders[KEYED]} order) or the cart in a database updated "
                      f"atomically ({lost[db]['lost']} adds lost, {retry_orders[db]} order)."),
    })
    reading = (
        f"{TABS} tabs added books to one cart at once, {total} adds in all: "
        + ", ".join(f"{c} kept {v['books in cart']} of {v['adds answered 200']}" for c, v in lost.items())
        + ". A retried confirm made " + ", ".join(f"{retry_orders[c]} ({c})" for c in retry_orders)
        + f" orders; a double-click made two orders in {dup_trials[NAIVE]} of {n_trials} tries on the naive "
        f"store and in {dup_trials[token]} of {n_trials} with the cart in the token."
    )
    measurements: dict[str, Any] = {
        "books kept of adds answered": {c: f"{v['books in cart']} of {v['adds answered 200']}"
                                        for c, v in lost.items()},
        "lost updates": {c: v["lost"] for c, v in lost.items()},
        "orders after a retried confirm": retry_orders,
        f"double-clicks that made 2 orders (of {n_trials})": dup_trials,
    }
    return Evidence(row=ROW, measurements=measurements, checks=checks, claims=claims, reading=reading,
                    seconds=seconds, extra={"lost": lost, "retry": retry, "double": double, "trials": n_trials})
