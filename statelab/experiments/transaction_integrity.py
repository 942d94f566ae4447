"""Transaction integrity: does either design keep a multi-step purchase correct by itself?

The seed says a stateful design "ensures transaction integrity by maintaining session context",
and a stateless one keeps transactions "isolated, ensuring integrity at request level". A shop
adds a checkout (plugin :func:`checkout`): add items, ``POST /checkout/start`` (a snapshot of the
cart), ``POST /checkout/confirm`` (an order). Orders are business data, stored on the server in
both designs (:class:`OrderBook`, shared by the cluster). The experiment then does what real
users and networks do:

1. **Concurrent updates of one session**: 8 browser tabs add to one cart at once. A stateful
   server with a naive read-modify-write store (:class:`NaiveStore`) loses updates; statelab's
   ``MemoryStore`` (a lock) and ``SqliteStore`` (``BEGIN IMMEDIATE``) lose none. A stateless
   server answers each tab with a token holding only that tab's add: the client keeps the
   last one, so the others are lost by design.
2. **A retried confirm** (the same request sent again after a timeout) and a **double-click**
   (two confirms at once): the stateless server creates a duplicate order, until an
   ``Idempotency-Key`` remembered server-side (:class:`IdempotencyKeys`) stops it; the stateful
   server consumes the checkout in the session, which stops a duplicate only if that update
   is atomic.

Integrity came from atomic updates and idempotency records: server-side state, in either design.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import g, jsonify, request

from ..shop.app import ApiError
from ..shop.server import Server
from ..shop.sessions import MemoryStore, Session, SqliteStore, Updater
from . import Evidence, progress, record

ROW = "transaction_integrity"
TABS = 8  # concurrent requests on one session
KEY_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")  # an Idempotency-Key we accept (fullmatch)


# --------------------------------------------------------------------------- server-side pieces

class NaiveStore(MemoryStore):
    """A session store whose ``update`` reads, pauses, then writes, with no lock held in between.

    This is what a hand-rolled ``data = store.get(sid); ...; store.set(sid, data)`` does (with
    Redis ``GET``/``SET``, or a row read then written without a transaction). The pause
    (``delay`` seconds) stands for the work between the read and the write, and makes the race
    show up reliably on a busy machine.
    """

    kind = "naive"

    def __init__(self, delay: float = 0.02) -> None:
        super().__init__()
        self.delay = delay

    def update(self, sid: str, change: Updater) -> Session | None:
        data = self.get(sid)  # read (a copy)
        if data is None:
            return None
        time.sleep(self.delay)  # meanwhile, another request reads the same old data
        new = change(data)  # modify
        entry = self._data.get(sid)
        if entry is None:
            return None
        self._data[sid] = (new, entry[1], time.time() + entry[1])  # write: last writer wins
        return dict(new)


class OrderBook:
    """Orders: business data every server of a cluster writes to (a database table, in real life)."""

    def __init__(self) -> None:
        self._orders: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def place(self, user: str, items: list[dict[str, Any]], checkout: str) -> dict[str, Any]:
        with self._lock:
            order = {"order": f"o{len(self._orders) + 1}-{secrets.token_hex(2)}", "user": user,
                     "items": [dict(line) for line in items], "checkout": checkout}
            self._orders.append(order)
            return dict(order)

    def for_user(self, user: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(o) for o in self._orders if o["user"] == user]

    def __len__(self) -> int:
        with self._lock:
            return len(self._orders)


class IdempotencyKeys:
    """What the server remembers per ``Idempotency-Key``: the answer it gave the first time.

    Shared by every server of a cluster (Redis or a table, in real life). A lock per key makes a
    retry that arrives while the first attempt still runs wait for it, then get the same answer.
    """

    def __init__(self) -> None:
        self._answers: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def once(self, scope: tuple[str, str], act: Callable[[], tuple[int, dict[str, Any]]]) -> tuple[int, dict, bool]:
        """Run ``act`` once per ``scope`` (user, key); later calls get the stored answer and ``True``."""
        with self._lock:
            key_lock = self._locks.setdefault(scope, threading.Lock())
        with key_lock:
            if scope in self._answers:
                status, body = self._answers[scope]
                return status, body, True
            status, body = act()
            if status < 500:
                self._answers[scope] = (status, body)
            return status, body, False

    def __len__(self) -> int:
        return len(self._answers)


def checkout(orders: OrderBook, idempotency: IdempotencyKeys | None = None) -> Callable[[Any], None]:
    """A plugin adding ``POST /checkout/start``, ``POST /checkout/confirm`` and ``GET /orders``.

    Stateful: the checkout (a snapshot of the cart) lives in the session, and confirming consumes
    it in one ``store.update``. Stateless: the checkout travels in the token, so the server cannot
    know it was already confirmed. With ``idempotency``, a confirm carrying an ``Idempotency-Key``
    header is acted on once per key; a repeat gets the first answer and ``Idempotent-Replayed: true``.
    """

    def plugin(app: Any) -> None:
        state = app.extensions["statelab"]
        mode = state["mode"]
        if mode not in ("stateful", "stateless"):
            raise ValueError("the checkout plugin supports the stateful and stateless modes")

        who = state["current"]  # (user, session data or token claims), or a 401

        def token(user: str, cart: list[dict[str, Any]], **claims: Any) -> str:
            return state["keyring"].issue(user, state["token_ttl"], cart=cart, **claims)

        @app.post("/checkout/start")
        def checkout_start():
            user, data = who()
            cart = data.get("cart") or []
            if not cart:
                raise ApiError(409, "your cart is empty: add something before checking out")
            snapshot = {"id": secrets.token_hex(4), "items": cart}
            if mode == "stateful":
                if state["store"].update(g.sid, lambda s: {**s, "checkout": snapshot}) is None:
                    raise ApiError(401, "session ended during checkout (log in again)")
                return jsonify(checkout=snapshot)
            return jsonify(checkout=snapshot, token=token(user, cart, checkout=snapshot))

        def confirm(user: str, data: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            if mode == "stateful":
                taken: list[dict[str, Any]] = []

                def consume(s: dict[str, Any]) -> dict[str, Any]:
                    if s.get("checkout"):
                        taken.append(s["checkout"])
                        return {**s, "cart": [], "checkout": None}
                    return s

                if state["store"].update(g.sid, consume) is None:
                    raise ApiError(401, "session ended during checkout (log in again)")
                if not taken:
                    raise ApiError(409, "nothing to confirm: no checkout in progress (already confirmed?)")
                return 201, {"order": orders.place(user, taken[0]["items"], taken[0]["id"])}
            snapshot = data.get("checkout")
            if not isinstance(snapshot, dict) or not isinstance(snapshot.get("items"), list):
                raise ApiError(409, "nothing to confirm: this token carries no checkout (start one first)")
            order = orders.place(user, snapshot["items"], str(snapshot.get("id")))
            return 201, {"order": order, "token": token(user, [])}

        @app.post("/checkout/confirm")
        def checkout_confirm():
            user, data = who()
            key = request.headers.get("Idempotency-Key")
            if idempotency is None or key is None:
                status, body = confirm(user, data)
                return jsonify(body), status
            if not KEY_RE.fullmatch(key):
                raise ApiError(400, "Idempotency-Key must be 1-64 characters: letters, digits, '.', '_' or '-'")

            def act() -> tuple[int, dict[str, Any]]:
                try:
                    return confirm(user, data)
                except ApiError as e:
                    return e.status, {"error": e.message}

            status, body, replayed = idempotency.once((user, key), act)
            response = jsonify(body)
            response.status_code = status
            if replayed:
                response.headers["Idempotent-Replayed"] = "true"
            return response

        @app.get("/orders")
        def orders_list():
            user, _ = who()
            return jsonify(orders=orders.for_user(user))

        @app.after_request
        def no_store(response):
            if request.endpoint in ("checkout_start", "checkout_confirm", "orders_list"):
                response.headers["Cache-Control"] = "private, no-store"
            return response

    return plugin


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

def lost_updates_stateful(store: Any, adds: int, tabs: int = TABS) -> dict[str, int]:
    """``tabs`` threads each add 1 book ``adds`` times to one session; how many adds survive?"""
    with Server("stateful", name=f"shop-{store.kind}", store=store) as server:
        server.start()
        owner = _Tab(server.url)
        owner.login("alice")

        def tab(_: int) -> int:
            t = _Tab(server.url)
            t.cookie = owner.cookie
            return sum(t.call("POST", "/cart", {"item": "book", "qty": 1})[0] == 200 for _ in range(adds))

        answered = sum(_all_at_once(tabs, tab))
        _, body = owner.call("GET", "/cart")
    kept = _qty(body.get("cart"))
    return {"adds answered 200": answered, "books in cart": kept, "lost": answered - kept}


def lost_updates_stateless(rounds: int, tabs: int = TABS) -> dict[str, int]:
    """Each round, ``tabs`` threads add 1 book with the client's current token; the client keeps the last answer."""
    with Server("stateless", name="shop-tokens") as server:
        server.start()
        client = _Tab(server.url)
        client.login("alice")
        answered = own_only = 0
        for _ in range(rounds):
            base = _qty(client.call("GET", "/cart")[1].get("cart"))
            def tab(_: int, token: str | None = client.token) -> tuple[int, dict[str, Any]]:
                return client.call("POST", "/cart", {"item": "book", "qty": 1}, token=token)

            answers = _all_at_once(tabs, tab)
            ok = [body for status, body in answers if status == 200]
            answered += len(ok)
            own_only += sum(_qty(body.get("cart")) == base + 1 for body in ok)
            if ok:
                client.token = ok[-1]["token"]  # the browser stores whichever answer it handled last
        kept = _qty(client.call("GET", "/cart")[1].get("cart"))
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
    return {"orders": len(orders.for_user(user)), "statuses": [a[0] for a in answers], "distinct order ids": len(ids)}


def duplicate_orders(design: str, *, store: Any = None, idempotent: bool = False, trials: int = 3) -> dict[str, Any]:
    """On one server: a retried confirm, then ``trials`` double-clicked confirms, each by a fresh user."""
    orders, keys = OrderBook(), IdempotencyKeys()
    options: dict[str, Any] = {"store": store} if store is not None else {}
    with Server(design, name=f"shop-{design}", plugins=[checkout(orders, keys)], **options) as server:
        server.start()
        retry = confirm_twice(server.url, orders, "retry", concurrent=False, idempotent=idempotent)
        double = [confirm_twice(server.url, orders, f"double-{i}", concurrent=True, idempotent=idempotent)
                  for i in range(trials)]
    return {"retry": retry, "double": [d["orders"] for d in double]}


CASES = {  # name -> (design, store factory or None, Idempotency-Key)
    "stateful, naive store": ("stateful", lambda: NaiveStore(), False),
    "stateful, atomic store": ("stateful", lambda: MemoryStore(), False),
    "stateless": ("stateless", None, False),
    "stateless + Idempotency-Key": ("stateless", None, True),
}


def run(*, quick: bool = False, adds: int | None = None, trials: int | None = None) -> Evidence:
    """Measure lost updates (8 concurrent tabs on one session) and duplicate orders (retry, double-click).

    ``adds``: adds per tab (stateful) or rounds of 8 concurrent adds (stateless); ``trials``: how
    many double-clicks each case gets (a race can be lost by luck, so it is tried more than once).
    """
    n_adds = adds if adds is not None else (1 if quick else 4)
    n_trials = trials if trials is not None else (2 if quick else 4)
    if not 1 <= n_adds <= 50 or not 1 <= n_trials <= 20:
        raise ValueError("adds must be 1 to 50 and trials 1 to 20")
    began = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="statelab-txn-", ignore_cleanup_errors=True)
    sqlite = SqliteStore(Path(tmp.name) / "sessions.sqlite3")
    lost: dict[str, dict[str, int]] = {}
    retry: dict[str, dict[str, Any]] = {}
    double: dict[str, list[int]] = {}
    steps = [("lost", "naive"), ("lost", "memory"), ("lost", "sqlite"), ("lost", "stateless")]
    steps += [("orders", name) for name in CASES]
    try:
        for kind, what in progress(steps, "transactions"):
            if kind == "lost" and what == "stateless":
                lost["stateless (tokens)"] = lost_updates_stateless(n_adds)
            elif kind == "lost":
                store = {"naive": NaiveStore, "memory": MemoryStore}.get(what, lambda: sqlite)()
                lost[f"stateful, {what} store"] = lost_updates_stateful(store, n_adds)
            else:
                design, factory, idem = CASES[what]
                result = duplicate_orders(design, store=factory() if factory else None, idempotent=idem,
                                          trials=n_trials)
                retry[what], double[what] = result["retry"], result["double"]
    finally:
        sqlite.close()
        tmp.cleanup()
    return record(_evidence(lost, retry, double, n_adds, n_trials, time.perf_counter() - began))


def _evidence(lost: dict[str, dict[str, int]], retry: dict[str, dict[str, Any]], double: dict[str, list[int]],
              n_adds: int, n_trials: int, seconds: float) -> Evidence:
    naive, memory, sqlite = (lost[f"stateful, {s} store"] for s in ("naive", "memory", "sqlite"))
    tokens = lost["stateless (tokens)"]
    retry_orders = {name: r["orders"] for name, r in retry.items()}
    dup_trials = {name: sum(n > 1 for n in runs) for name, runs in double.items()}
    idem = "stateless + Idempotency-Key"
    checks = {
        "a naive read-modify-write session store loses concurrent cart updates": naive["lost"] > 0,
        "an atomic store (MemoryStore's lock, SQLite's BEGIN IMMEDIATE) loses none":
            memory["lost"] == 0 and sqlite["lost"] == 0 and memory["adds answered 200"] > 0,
        "stateless: every concurrent add answers a token holding only its own add, so the client loses the rest":
            tokens["answers holding only their own add"] == tokens["adds answered 200"] and tokens["lost"] > 0,
        "a retried stateless confirm creates a duplicate order": retry_orders["stateless"] >= 2,
        "an Idempotency-Key remembered on the server stops the duplicate (retry and double-click)":
            retry_orders[idem] == 1 and retry[idem]["distinct order ids"] == 1 and dup_trials[idem] == 0,
        "a retried stateful confirm finds its checkout consumed: no duplicate":
            retry_orders["stateful, atomic store"] == 1 and retry_orders["stateful, naive store"] == 1,
        "a double-clicked stateful confirm duplicates on the naive store, never on the atomic one":
            dup_trials["stateful, naive store"] > 0 and dup_trials["stateful, atomic store"] == 0,
    }
    stateful_by_itself = naive["lost"] == 0 and dup_trials["stateful, naive store"] == 0
    stateless_by_itself = tokens["lost"] == 0 and retry_orders["stateless"] == 1
    verdict = ("holds" if stateful_by_itself and stateless_by_itself
               else "holds with nuance" if stateful_by_itself or stateless_by_itself else "does not hold")
    total = naive["adds answered 200"]
    reading = (
        f"{TABS} tabs added {total} books to one cart at once: a naive session store kept {naive['books in cart']}, "
        f"MemoryStore {memory['books in cart']} and SQLite {sqlite['books in cart']}; with tokens the client kept "
        f"{tokens['books in cart']} of {tokens['adds answered 200']}. A retried confirm made "
        f"{retry_orders['stateless']} orders on the stateless server and {retry_orders[idem]} with an "
        f"Idempotency-Key; the stateful session made {retry_orders['stateful, atomic store']}, but a double-click "
        f"on the naive store duplicated in {dup_trials['stateful, naive store']} of {n_trials} tries. "
        f"Integrity came from atomic updates and idempotency records, server-side state in both designs."
    )
    measurements: dict[str, Any] = {
        "books kept of adds answered": {k: f"{v['books in cart']} of {v['adds answered 200']}"
                                        for k, v in lost.items()},
        "lost updates": {k: v["lost"] for k, v in lost.items()},
        "orders after a retried confirm": retry_orders,
        f"double-clicks that made 2 orders (of {n_trials})": dup_trials,
    }
    return Evidence(row=ROW, measurements=measurements, checks=checks, verdict=verdict, reading=reading,
                    seconds=seconds, extra={"lost": lost, "retry": retry, "double": double, "trials": n_trials})


def plot(ev: Evidence, ax: Any = None) -> Any:
    """Left: adds kept vs lost per store. Right: orders made by a retry and by a double-click, per case."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.0))
    else:
        fig, left, right = ax.figure, ax, ax.inset_axes([1.25, 0, 1, 1])
    lost = ev.extra["lost"]
    names = list(lost)
    kept = [lost[n]["books in cart"] for n in names]
    gone = [lost[n]["lost"] for n in names]
    ys = range(len(names))
    left.barh(ys, kept, color="tab:green", label="kept")
    left.barh(ys, gone, left=kept, color="tab:red", label="lost")
    left.set_yticks(list(ys), [n.replace("stateful, ", "") for n in names], fontsize=8)
    left.invert_yaxis()
    left.set_xlabel(f"concurrent adds to one cart ({TABS} tabs)")
    left.set_title("Lost updates", fontsize=10)
    left.set_xlim(0, max(k + g for k, g in zip(kept, gone, strict=True)) * 1.4 or 1)
    left.legend(fontsize=7, loc="center right")
    cases = list(ev.extra["retry"])
    retry = [ev.extra["retry"][c]["orders"] for c in cases]
    double = [max(ev.extra["double"][c]) for c in cases]
    xs = range(len(cases))
    right.bar([x - 0.2 for x in xs], retry, 0.4, label="retried confirm", color="tab:blue")
    right.bar([x + 0.2 for x in xs], double, 0.4, label="double-click (worst try)", color="tab:purple")
    right.axhline(1, color="grey", lw=0.8, ls="--")
    right.set_xticks(list(xs), [c.replace(" + ", "\n+ ").replace(", ", ",\n") for c in cases], fontsize=7)
    right.set_ylabel("orders created")
    right.set_yticks([0, 1, 2])
    right.set_ylim(0, 2.9)
    right.set_title("One checkout, confirmed twice", fontsize=10)
    right.legend(fontsize=7, loc="upper center", ncol=2, frameon=False)
    fig.tight_layout()
    return fig
