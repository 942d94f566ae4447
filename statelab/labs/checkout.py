"""Lab 05 · An idempotent checkout: the shop's checkout, and checkers for an ``Idempotency-Key``.

The lab gives the servers a checkout (:func:`checkout`, a plugin adding ``POST /checkout``, which
turns the cart into an order in ``Orders``, the shop's order book, the business data every server
shares). A retry of the same request places the order twice. The learner writes the fix: a plugin
factory ``idempotent(answers)`` that remembers the first answer per key (task 1); an atomic
``claim(db, user, key, fingerprint, ttl)`` and ``finish(...)`` on a SQLite table every server
*process* opens (:func:`open_keys`, task 2a, raced from two OS processes); the plugin
``idempotent_safe(path)`` built on them (task 2b: a double-click, keys per user, 400 for a bad key,
422 for another body, a 5xx that releases the key, a double-click split between two server
processes); then a client ``checkout_with_retries(send)`` that retries a lost answer safely (task 3).
The checkers count orders placed over real HTTP.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, jsonify, request

from ..client import Client, Exchange
from ..service import cleanup
from ..shop.app import ApiError
from ..shop.plugins import OrderBook as Orders
from ..shop.plugins import place_order
from ..shop.server import Server
from ..topology.cluster import Cluster
from .processes import Meeting, race
from .report import Report, blame, call, checker


def checkout(orders: Orders, *, work: float = 0.05) -> Callable[[Flask], None]:
    """A plugin adding ``POST /checkout`` (the cart becomes an order in ``orders``: 201) and ``GET /orders``.

    The cart is taken by the shop's own :func:`~statelab.shop.plugins.place_order`, the one way every
    checkout of the package empties a cart: one atomic ``change_cart``, wherever the cart lives (a
    session, the cart table, or a new token with an empty cart). A cart that is already empty gets 409.
    ``work`` seconds stand for the payment provider's answer: long enough that two requests sent at
    once are both in the middle of a checkout, as a double-click makes them. Set ``plugin.failing = n``
    and the next ``n`` checkouts fail with a JSON 503 before anything changes (the provider is down):
    the answer a client may retry.
    """
    failing_lock = threading.Lock()

    def plugin(app: Flask) -> None:
        state = app.extensions["statelab"]

        @app.post("/checkout")
        def checkout_post():
            _, data = state["current"]()  # the app's own check: session cookie or bearer token, else 401
            if not data.get("cart"):
                raise ApiError(409, "your cart is empty: add something before checking out")
            time.sleep(work)  # the payment provider thinks it over
            with failing_lock:
                down, plugin.failing = plugin.failing > 0, max(0, plugin.failing - 1)
            if down:
                raise ApiError(503, "the payment provider did not answer: nothing was charged, try again")
            status, body = place_order(state, orders)
            return jsonify(body), status

        @app.get("/orders")
        def orders_get():
            user, _ = state["current"]()
            return jsonify(orders=orders.of(user))

        @app.after_request
        def private(response):
            if request.endpoint in ("checkout_post", "orders_get"):
                response.headers["Cache-Control"] = "private, no-store"
            return response

    plugin.failing = 0  # type: ignore[attr-defined]
    return plugin


KEYS_SCHEMA = ("CREATE TABLE IF NOT EXISTS keys (user TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL, "
               "status INTEGER, body TEXT, expires REAL NOT NULL, PRIMARY KEY (user, key))")


def open_keys(path: str) -> sqlite3.Connection:
    """A connection to the table of idempotency keys in the SQLite file ``path``, shared by every server process.

    One row per (user, key): the request's ``fingerprint``, the answer's ``status`` and ``body`` (JSON text;
    both NULL while the first attempt runs: "in progress"), and when the row ``expires`` (``time.time()``
    seconds). The primary key is what makes a claim atomic across processes: of two ``INSERT`` s of one
    (user, key), SQLite lets exactly one succeed, the other raises ``sqlite3.IntegrityError``. Autocommit (each
    statement its own transaction); waits up to 10 s for another process's write. Close it when done.
    """
    db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    db.execute(KEYS_SCHEMA)
    return db


# --------------------------------------------------------------------------- helpers for the checks

def _shopper(url: str, user: str) -> tuple[Client, str]:
    """A logged-in user with two books in the cart, and the token that carries them."""
    c = Client(url)
    c.login(user)
    c.add_to_cart("book", qty=2)
    return c, c.token or ""


def _post_checkout(url: str, token: str, key: str | None, body: Any = None) -> Exchange:
    """One POST /checkout with exactly this token (a retry resends the same bytes), and ``body`` as JSON if given."""
    c = Client(url)
    c.token = token
    return c.post("/checkout", json=body, headers={"Idempotency-Key": key} if key is not None else None)


def _order_id(ex: Exchange) -> Any:
    return ex.body.get("order", {}).get("order") if isinstance(ex.body, dict) and isinstance(
        ex.body.get("order"), dict) else None


def _plugin(report: Report, name: str, factory: Any, arg: Any) -> Any:
    """The plugin the learner's ``name(arg)`` returns (the check stops here if it is not one)."""
    what = f"{name}({'answers' if isinstance(arg, dict) else 'path'})"
    plugin = call(what, factory, arg)
    report.require(f"{what} returns a plugin", callable(plugin), "a function plugin(app)",
                   f"{what} returned {plugin!r}"[:120])
    return plugin


def _cluster(plugins: list[Any], what: str) -> Cluster:
    with blame(what):
        return Cluster(3, "stateless", balancer="round_robin", plugins=plugins)


# --------------------------------------------------------------------------- task 1

@checker("Task 1 · a retried checkout places one order")
def check_retry_once(report: Report, idempotent: Any) -> None:
    """Retry the same checkout through round robin (so another server answers): one order, the same answer."""
    answers: dict[Any, Any] = {}
    plugin = _plugin(report, "idempotent", idempotent, answers)
    orders = Orders()
    with _cluster([checkout(orders), plugin], "the plugin idempotent(answers) returned") as cluster:
        _, token = _shopper(cluster.url, "alice")
        key = f"checkout-{secrets.token_hex(4)}"
        first = _post_checkout(cluster.url, token, key)
        report.require("the first checkout places an order", first.status == 201 and _order_id(first),
                       "201 with an order", first.summary())
        retry = _post_checkout(cluster.url, token, key)
        report.expect("a retry (same token, same key) gets the first answer again",
                      retry.status == 201 and _order_id(retry) == _order_id(first),
                      f"201 with order {_order_id(first)}", f"{retry.status} with order {_order_id(retry)}")
        report.expect("the retry comes from another server, through the shared store",
                      retry.served_by != first.served_by, f"not {first.served_by}", retry.served_by)
        replayed = (retry.headers or {}).get("Idempotent-Replayed")
        report.expect("the replayed answer says so", replayed == "true", "Idempotent-Replayed: true", replayed)
        report.expect("one order placed for one checkout", len(orders.of("alice")) == 1, "1",
                      len(orders.of("alice")))
        other = _post_checkout(cluster.url, token, f"checkout-{secrets.token_hex(4)}")
        report.expect("a different key is a different checkout", other.status == 201 and
                      _order_id(other) not in (None, _order_id(first)), "201 with a new order", other.summary())
        plain = _post_checkout(cluster.url, token, None)
        report.expect("a request without a key works as before", plain.status == 201, "201", plain.summary())
        report.note(f"the shared store now holds {len(answers)} remembered answer(s): idempotency is server-side "
                    "state, even for a stateless server")


# --------------------------------------------------------------------------- task 2a

LIMIT = 5.0        # seconds one call of the learner's claim() or finish() may take
DISTANCE = 0.003   # seconds each statement takes in the two-process race: a store over the network
RACE_KEYS = 60     # keys both processes try to claim, one after another
MEET = 2.0         # seconds a process waits for the other before each key (then it goes on alone)
TRIES = 3          # runs in which the two processes never overlapped prove nothing: run again


class _Distant:
    """A connection whose every statement takes ``DISTANCE`` more seconds, as a store across a network does.

    A claim made of one atomic statement is as correct at any distance; one that looks first and writes
    after leaves a gap this long in which another process can look too.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, parameters)
        finally:
            time.sleep(DISTANCE)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def _row(found: Any) -> tuple[Any, Any, Any] | None:
    return tuple(found) if isinstance(found, (tuple, list, sqlite3.Row)) and len(found) == 3 else None


def _claims_from_processes(claim: Any, path: str) -> tuple[int, int, list[str], list[int]]:
    """Two OS processes, each with its own connection, claim the same ``RACE_KEYS`` keys at once.

    Before each key the two meet (a byte each way through a pipe), so both ask for key k at the same moment,
    as a double-click's two requests do, whatever the machine's load. Returns (keys raced, keys claimed
    exactly once, what went wrong, how many each process won).
    """
    for attempt in range(TRIES):
        with Meeting(MEET) as meeting:

            def work(i: int, attempt: int = attempt, meeting: Meeting = meeting) -> str:  # in each child
                db = _Distant(open_keys(path))
                won = []
                for k in range(RACE_KEYS):
                    meeting.meet(i)  # the other is ready for key k too (or gone: go on)
                    if claim(db, "alice", f"race{attempt}-{k}", "fp", 30) is None:
                        won.append(k)
                return ",".join(map(str, won))

            outcome = race(work, 2, what=f"its {RACE_KEYS} claims")
        wins = [{int(k) for k in r.split(",") if k} for r in outcome.results]
        once = sum(1 for k in range(RACE_KEYS) if sum(k in w for w in wins) == 1)
        if outcome.overlapped or outcome.problems or once != RACE_KEYS:
            break
    return RACE_KEYS, once, outcome.problems, [len(w) for w in wins]


@checker("Task 2a · an atomic claim on a key, in a store every process shares")
def check_claims(report: Report, claim: Any, finish: Any) -> None:
    """The claim's contract, called directly, in this order: claim, in progress, another body, another user,
    an answer, a 5xx that releases, a claim that lapses, then two OS processes claiming the same keys at once."""
    with cleanup.folder("statelab-lab05-") as tmp:
        path = str(Path(tmp) / "keys.sqlite3")
        db = open_keys(path)
        try:
            _check_claims(report, claim, finish, db, path)
        finally:
            db.close()


def _check_claims(report: Report, claim: Any, finish: Any, db: sqlite3.Connection, path: str) -> None:
    def claim_(user: str, key: str, fp: str, ttl: float = 30) -> Any:
        return call(f"claim(db, {user!r}, {key!r}, {fp!r}, {ttl:g})", claim, db, user, key, fp, ttl, limit=LIMIT)

    def finish_(user: str, key: str, status: int, body: str) -> Any:
        return call(f"finish(db, {user!r}, {key!r}, {status}, {body!r})", finish, db, user, key, status, body,
                    limit=LIMIT)

    first = claim_("alice", "k1", "fp-a")
    report.require("1. claim() of a new key: the key is yours", first is None, "None (nothing was there: yours now)",
                   f"claim() returned {first!r}"[:120])
    again = claim_("alice", "k1", "fp-a")
    report.require("2. the same key again, while the first attempt runs: in progress",
                   _row(again) == ("fp-a", None, None), "the row ('fp-a', None, None): status None = in progress",
                   f"claim() returned {again!r}"[:120])
    changed = claim_("alice", "k1", "fp-b")
    report.expect("3. the same key with another request: the row shows the first request's fingerprint",
                  _row(changed) is not None and _row(changed)[0] == "fp-a",
                  "a row starting 'fp-a' (the plugin will answer 422)", f"claim() returned {changed!r}"[:120])
    bob = claim_("bob", "k1", "fp-a")
    report.expect("4. another user's key of the same name is another key", bob is None, "None",
                  f"claim() returned {bob!r}"[:120])
    finish_("alice", "k1", 201, '{"order": "o1"}')
    answered = claim_("alice", "k1", "fp-a")
    report.expect("5. after finish(..., 201, body): a claim finds the answer", _row(answered) == (
        "fp-a", 201, '{"order": "o1"}'), "('fp-a', 201, '{\"order\": \"o1\"}')", f"claim() returned {answered!r}"[:120])
    claim_("alice", "k5", "fp-a")
    finish_("alice", "k5", 503, '{"error": "down"}')
    retried = claim_("alice", "k5", "fp-a")
    report.expect("6. finish() with a 5xx releases the claim: a retry may run", retried is None,
                  "None (the key is free again)", f"claim() returned {retried!r}"[:120])
    claim_("alice", "lapses", "fp-a", 0.3)
    claim_("alice", "kept", "fp-a", 0.3)
    finish_("alice", "kept", 201, '{"order": "o2"}')
    time.sleep(0.6)  # waiting longer only makes the lapse more certain: safe on a busy machine
    lapsed = claim_("alice", "lapses", "fp-a")
    report.expect("7. a claim left in progress (its server died) lapses after its ttl", lapsed is None,
                  "None 0.6 s after a claim with ttl 0.3 s", f"claim() returned {lapsed!r}"[:120])
    kept = claim_("alice", "kept", "fp-a")
    report.expect("8. an answer outlives the claim's ttl", _row(kept) is not None and _row(kept)[1] == 201,
                  "a row with status 201 (an answer is kept for a day)", f"claim() returned {kept!r}"[:120])
    raced, once, problems, wins = _claims_from_processes(claim, path)
    report.expect("9. two server processes claim the same keys at once: each key is won exactly once",
                  once == raced and not problems, f"{raced} of {raced} keys won by one process",
                  "; ".join(problems) or f"{once} of {raced} keys won by one process (wins per process: {wins}; "
                  f"{raced - once} keys won by both)")
    report.note(f"two OS processes, {raced} keys, each statement {DISTANCE * 1000:g} ms away: {once} of {raced} "
                "claimed exactly once. A threading.Lock or a dict lives inside one process; only the shared "
                "store's own atomic step (a unique INSERT here, SET NX PX on Valkey) holds across processes.")


# --------------------------------------------------------------------------- task 2b

def _label(ex: Exchange) -> str:
    """A status with what it means: a replayed answer is not a claim in progress."""
    if ex.status is None:
        return "no answer"
    if (ex.headers or {}).get("Idempotent-Replayed") == "true":
        return f"{ex.status} replayed"
    if ex.status == 409:
        return "409 in progress"
    return str(ex.status)


@checker("Task 2b · the plugin: bad keys, a double-click, another body, another user, a failed checkout")
def check_double_click(report: Report, idempotent_safe: Any) -> None:
    """Over three servers, in this order: malformed keys (400); eight identical checkouts at once (one order);
    a later retry (replayed); the same key with another body (422); bob reusing alice's key (his own order);
    a checkout that fails with 503, retried with its key (one order). Then two OS processes, each a server with
    the plugin on the same file, get the two requests of each double-click at the same moment (one order each)."""
    with cleanup.folder("statelab-lab05-") as tmp:
        path = str(Path(tmp) / "keys.sqlite3")
        plugin = _plugin(report, "idempotent_safe", idempotent_safe, path)
        orders = Orders()
        shop = checkout(orders, work=0.15)
        with _cluster([shop, plugin], "the plugin idempotent_safe(path) returned") as cluster:
            _double_click(report, cluster, orders, shop)
            _, token = _shopper(cluster.url, "dora")
            keyring = cluster.keyring
        keys, placed, once, problems, per_process = _double_clicks_from_processes(idempotent_safe, path, keyring,
                                                                                  token)
        report.expect("7. two server processes, each with your plugin on the same file, get both clicks of a "
                      "double-click at once: one order each", placed == keys and once == keys and not problems,
                      f"{keys} orders for {keys} double-clicks",
                      "; ".join(problems) or f"{placed} orders for {keys} double-clicks ("
                      + (f"{keys - once} placed twice or never; " if once != keys else "")
                      + f"per process: {'; '.join(per_process)})")
        report.note(f"two OS processes, {keys} double-clicks, one click to each: {placed} orders placed for "
                    f"{keys} double-clicks. A dict and a threading.Lock live inside one process; each server "
                    "process has its own, so each claims the key and places the order. Only the shared store's "
                    "atomic step (a unique INSERT, SET NX PX on Valkey) makes one of them wait.")


PROCESS_CLICKS = 6    # double-clicks split between two server processes: one click to each
PROCESS_WORK = 0.05   # seconds each of those checkouts takes (the loser's claim comes while the winner's runs)


def _double_clicks_from_processes(idempotent_safe: Any, path: str, keyring: Any,
                                  token: str) -> tuple[int, int, int, list[str], list[str]]:
    """Two OS processes, each a stateless server with the learner's plugin on ``path`` (the cluster's keys, so
    both accept ``token``), each send one click of every double-click to their own server at the same moment.

    Returns (double-clicks, orders placed in all, double-clicks that placed exactly one order, what went wrong,
    what each process answered). Orders are counted in each process's own order book, and per key from the
    answers: a ``201`` that is not replayed is an order placed.
    """
    for attempt in range(TRIES):
        with Meeting(MEET) as meeting:

            def work(i: int, attempt: int = attempt, meeting: Meeting = meeting) -> str:  # in each child
                orders = Orders()
                server = Server("stateless", name=f"process-{i}", keyring=keyring,
                                plugins=[checkout(orders, work=PROCESS_WORK), idempotent_safe(path)]).start()
                try:
                    labels = []
                    for k in range(PROCESS_CLICKS):
                        meeting.meet(i)  # the other process's click is leaving now too
                        labels.append(_label(_post_checkout(server.url, token, f"twice{attempt}-{k}")))
                finally:
                    server.stop()
                return f"{len(orders)}|{','.join(labels)}"

            outcome = race(work, 2, what=f"its {PROCESS_CLICKS} checkouts")
        placed = sum(int(r.split("|")[0]) for r in outcome.results)
        answers = [r.split("|")[1].split(",") for r in outcome.results]
        once = sum(1 for k in range(PROCESS_CLICKS)
                   if sum(len(a) > k and a[k] == "201" for a in answers) == 1) if len(answers) == 2 else 0
        if outcome.overlapped or outcome.problems or once != PROCESS_CLICKS:
            break
    per_process = [f"{r.split('|')[0]} orders, answers {r.split('|')[1].replace(',', ', ')}" for r in outcome.results]
    return PROCESS_CLICKS, placed, once, outcome.problems, per_process


def _double_click(report: Report, cluster: Cluster, orders: Orders, shop: Any) -> None:
    clicks = 8
    _, token = _shopper(cluster.url, "alice")
    bad = {label: _post_checkout(cluster.url, token, k).status for label, k in
           (("200 characters", "k" * 200), ("a space", "a b"), ("empty", ""), ("a percent sign", "a%0ab"),
            ("non-ASCII", "clé"))}
    report.expect("1. a malformed key is refused with 400", all(v == 400 for v in bad.values()), "400 each", bad)
    key = f"click-{secrets.token_hex(4)}"
    barrier = threading.Barrier(clicks)
    results: list[Exchange] = []
    lock = threading.Lock()

    def click() -> None:
        try:
            barrier.wait(timeout=5)
        except threading.BrokenBarrierError:  # a slow machine: go anyway
            pass
        ex = _post_checkout(cluster.url, token, key)
        with lock:
            results.append(ex)

    threads = [threading.Thread(target=click, name="statelab-lab-click") for _ in range(clicks)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    placed = orders.of("alice")
    labels = sorted(_label(ex) for ex in results)
    report.expect(f"2. {clicks} identical checkouts at once place one order", len(placed) == 1, "1 order",
                  f"{len(placed)} orders (answers: {', '.join(labels)})")
    ids = {_order_id(ex) for ex in results if ex.status == 201}
    report.expect("2. every answer is that order (201, or 201 replayed) or '409 in progress'",
                  len(ids) == 1 and all(ex.status in (201, 409) for ex in results),
                  "201s with one order id, and 409s", f"{', '.join(labels)}; order ids {sorted(map(str, ids))}")
    retry = _post_checkout(cluster.url, token, key)
    report.expect("3. a later retry gets the order again, marked as replayed",
                  retry.status == 201 and _order_id(retry) in ids and _label(retry) == "201 replayed",
                  "201 replayed, with the same order", f"{_label(retry)}: {retry.summary()}")
    other = _post_checkout(cluster.url, token, key, body={"gift": True})
    report.expect("4. the same key with another body is refused with 422", other.status == 422,
                  "422 (IETF Idempotency-Key draft): a new request needs a new key", other.summary())
    _, bob_token = _shopper(cluster.url, "bob")
    bob = _post_checkout(cluster.url, bob_token, key)
    mine = isinstance(bob.body, dict) and isinstance(bob.body.get("order"), dict) and \
        bob.body["order"].get("user") == "bob"
    report.expect("5. bob using alice's key gets his own order, not alice's answer", bob.status == 201 and mine,
                  "201 with an order for bob", bob.summary() + (f" {bob.body.get('order')}"
                                                                if isinstance(bob.body, dict) else ""))
    _, carol_token = _shopper(cluster.url, "carol")
    shop.failing = 1
    failed_key = f"fails-{secrets.token_hex(4)}"
    down = _post_checkout(cluster.url, carol_token, failed_key)
    again = _post_checkout(cluster.url, carol_token, failed_key)
    report.expect("6. a 5xx answer releases the claim: the retry with the same key places the order",
                  down.status == 503 and again.status == 201 and _label(again) == "201"
                  and len(orders.of("carol")) == 1,
                  "503, then 201 (not replayed) and 1 order",
                  f"{_label(down)}, then {_label(again)}; {len(orders.of('carol'))} order(s) for carol")
    report.note(f"orders placed in all: {len(orders)} (alice {len(orders.of('alice'))}, bob "
                f"{len(orders.of('bob'))}, carol {len(orders.of('carol'))}) by three servers that are threads of "
                "one process; item 7 splits double-clicks between two server processes")


# --------------------------------------------------------------------------- task 3

def _lossy_sender(url: str, token: str, lose: int, sent: list[dict[str, str]]) -> Callable[..., Exchange]:
    """``send(headers=None)``: POST /checkout with the original token; the first ``lose`` answers are lost."""

    def send(headers: dict[str, str] | None = None) -> Exchange:
        headers = dict(headers or {})
        sent.append(headers)
        ex = _post_checkout(url, token, headers.get("Idempotency-Key"))
        if len(sent) <= lose:  # the server acted, the answer never arrived
            return Exchange("POST", "/checkout", error="timed out (the answer was lost on the way back)",
                            sent=headers)
        return ex

    return send


@checker("Task 3 · a client that retries safely (against your task 2b plugin)")
def check_retries(report: Report, checkout_with_retries: Any, idempotent_safe: Any) -> None:
    """Two answers in a row are lost on the way back; the learner's client must end with exactly one order."""
    with cleanup.folder("statelab-lab05-") as tmp:
        path = str(Path(tmp) / "keys.sqlite3")
        plugin = call("idempotent_safe(path), your task 2b plugin, on the servers", idempotent_safe, path)
        orders = Orders()
        with _cluster([checkout(orders), plugin], "the plugin idempotent_safe(path) returned") as cluster:
            _retries(report, cluster, orders, checkout_with_retries)


def _retries(report: Report, cluster: Cluster, orders: Orders, checkout_with_retries: Any) -> None:
    lose = 2
    _, token = _shopper(cluster.url, "alice")
    sent: list[dict[str, str]] = []
    final = call("checkout_with_retries(send)", checkout_with_retries, _lossy_sender(cluster.url, token, lose, sent))
    report.require("checkout_with_retries(send) returns the last Exchange", isinstance(final, Exchange),
                   "an Exchange", f"checkout_with_retries(send) returned {final!r}"[:120])
    report.expect("it kept trying after lost answers", len(sent) >= lose + 1, f"{lose + 1} or more attempts",
                  len(sent))
    keys = {h.get("Idempotency-Key") for h in sent}
    report.expect("every attempt carried the same Idempotency-Key", len(keys) == 1 and None not in keys,
                  "one key, on every attempt", sorted(map(str, keys)))
    report.expect("the client ends with the order", final.status == 201 and _order_id(final) is not None,
                  "201 with an order", final.summary())
    report.expect("exactly one order was placed", len(orders.of("alice")) == 1, "1", len(orders.of("alice")))
    naive_sent: list[dict[str, str]] = []
    _, token2 = _shopper(cluster.url, "carol")
    naive = _lossy_sender(cluster.url, token2, lose, naive_sent)
    while len(naive_sent) < lose + 1 and not naive().ok:
        pass
    report.note(f"for comparison, a retry loop without a key placed {len(orders.of('carol'))} order(s) for one "
                f"click; yours placed {len(orders.of('alice'))}")
