"""Lab 05 · An idempotent checkout: the shop's checkout, and checkers for an ``Idempotency-Key``.

The lab gives the servers a checkout (:func:`checkout`, a plugin adding ``POST /checkout``, which
turns the cart into an order in ``Orders``, the shop's order book, the business data every server
shares). A retry
of the same request places the order twice. The learner writes the fix: a plugin factory
``idempotent(answers)`` that remembers the first answer per key in a store shared by the
cluster, then ``idempotent_safe(answers)`` that also survives a double-click (two requests at
once) and scopes keys by user, then a client ``checkout_with_retries(send)`` that retries a
lost answer safely. The checkers count orders placed over real HTTP.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, g, jsonify, request

from ..client import Client, Exchange
from ..shop.app import ApiError
from ..shop.plugins import OrderBook as Orders
from ..topology.cluster import Cluster
from .report import Report, blame, call, checker


def checkout(orders: Orders, *, work: float = 0.05) -> Callable[[Flask], None]:
    """A plugin adding ``POST /checkout``: the cart becomes an order in ``orders`` (201), and the cart empties.

    ``work`` seconds stand for the payment provider's answer: long enough that two requests sent at
    once are both in the middle of a checkout, as a double-click makes them. Stateless servers
    answer with the order and a new token (empty cart); stateful ones empty the cart in the session.
    A cart that is already empty gets 409.
    """

    def plugin(app: Flask) -> None:
        state = app.extensions["statelab"]
        mode = state["mode"]
        if mode not in ("stateful", "stateless"):
            raise ValueError("the checkout plugin supports the stateful and stateless modes")

        def who() -> tuple[str, list[dict[str, Any]]]:
            user, data = state["current"]()  # the app's own check: session cookie or bearer token, else 401
            cart = data.get("cart")
            return user, list(cart) if isinstance(cart, list) else []

        @app.post("/checkout")
        def checkout_post():
            user, cart = who()
            if not cart:
                raise ApiError(409, "your cart is empty: add something before checking out")
            time.sleep(work)  # the payment provider thinks it over
            if mode == "stateful":
                taken: list[list[dict[str, Any]]] = []

                def empty(s: dict[str, Any]) -> dict[str, Any]:
                    taken.append(s.get("cart") or [])
                    return {**s, "cart": []}

                if state["store"].update(g.sid, empty) is None or not taken[0]:
                    raise ApiError(409, "your cart is empty: add something before checking out")
                return jsonify(order=orders.place(user, taken[0])), 201
            order = orders.place(user, cart)
            return jsonify(order=order, token=state["keyring"].issue(user, state["token_ttl"], cart=[])), 201

        @app.get("/orders")
        def orders_get():
            user, _ = who()
            return jsonify(orders=orders.of(user))

        @app.after_request
        def private(response):
            if request.endpoint in ("checkout_post", "orders_get"):
                response.headers["Cache-Control"] = "private, no-store"
            return response

    return plugin


# --------------------------------------------------------------------------- helpers for the checks

def _shopper(url: str, user: str) -> tuple[Client, str]:
    """A logged-in user with two books in the cart, and the token that carries them."""
    c = Client(url)
    c.login(user)
    c.add_to_cart("book", qty=2)
    return c, c.token or ""


def _post_checkout(url: str, token: str, key: str | None) -> Exchange:
    """One POST /checkout with exactly this token (a retry resends the same bytes)."""
    c = Client(url)
    c.token = token
    return c.post("/checkout", headers={"Idempotency-Key": key} if key is not None else None)


def _order_id(ex: Exchange) -> Any:
    return ex.body.get("order", {}).get("order") if isinstance(ex.body, dict) and isinstance(
        ex.body.get("order"), dict) else None


def _plugin(report: Report, name: str, factory: Any, answers: dict[Any, Any]) -> Any:
    """The plugin the learner's ``name(answers)`` returns (the check stops here if it is not one)."""
    plugin = call(f"{name}(answers)", factory, answers)
    report.require(f"{name}(answers) returns a plugin", callable(plugin), "a function plugin(app)",
                   f"{plugin!r}"[:80])
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


# --------------------------------------------------------------------------- task 2

@checker("Task 2 · a double-click places one order, and keys belong to their user")
def check_double_click(report: Report, idempotent_safe: Any) -> None:
    """Eight identical checkouts at once over three servers; then another user reusing the key; then bad keys."""
    answers: dict[Any, Any] = {}
    plugin = _plugin(report, "idempotent_safe", idempotent_safe, answers)
    orders = Orders()
    clicks = 8
    with _cluster([checkout(orders, work=0.15), plugin], "the plugin idempotent_safe(answers) returned") as cluster:
        _, token = _shopper(cluster.url, "alice")
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
        report.expect(f"{clicks} identical checkouts at once place one order", len(placed) == 1, "1 order",
                      f"{len(placed)} orders")
        ids = {_order_id(ex) for ex in results if ex.status == 201}
        statuses = sorted(str(ex.status) for ex in results)
        report.expect("every answer is that order (201) or 'in progress' (409)",
                      len(ids) == 1 and all(ex.status in (201, 409) for ex in results),
                      "201s with one order id, and 409s", f"statuses {statuses}, order ids {sorted(map(str, ids))}")
        retry = _post_checkout(cluster.url, token, key)
        report.expect("a later retry gets the order", retry.status == 201 and _order_id(retry) in ids,
                      "201 with the same order", retry.summary())
        _, bob_token = _shopper(cluster.url, "bob")
        bob = _post_checkout(cluster.url, bob_token, key)
        mine = isinstance(bob.body, dict) and isinstance(bob.body.get("order"), dict) and \
            bob.body["order"].get("user") == "bob"
        report.expect("bob using alice's key gets his own order, not alice's answer", bob.status == 201 and mine,
                      "201 with an order for bob", bob.summary() + (f" {bob.body.get('order')}"
                                                                    if isinstance(bob.body, dict) else ""))
        bad = {label: _post_checkout(cluster.url, token, k).status for label, k in
               (("200 characters", "k" * 200), ("a space", "a b"), ("empty", ""), ("a percent sign", "a%0ab"),
                ("non-ASCII", "clé"))}
        report.expect("a malformed key is refused with 400", all(v == 400 for v in bad.values()), "400 each", bad)
        report.note(f"orders placed in all: {len(orders)}; remembered answers: {len(answers)}")


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


@checker("Task 3 · a client that retries safely")
def check_retries(report: Report, checkout_with_retries: Any, idempotent_safe: Any) -> None:
    """Two answers in a row are lost on the way back; the learner's client must end with exactly one order."""
    lose = 2
    orders = Orders()
    answers: dict[Any, Any] = {}
    plugin = call("idempotent_safe(answers) from task 2", idempotent_safe, answers)
    with _cluster([checkout(orders), plugin], "the plugin idempotent_safe(answers) returned") as cluster:
        _, token = _shopper(cluster.url, "alice")
        sent: list[dict[str, str]] = []
        final = call("checkout_with_retries(send)", checkout_with_retries,
                     _lossy_sender(cluster.url, token, lose, sent))
        report.require("returns the last Exchange", isinstance(final, Exchange), "an Exchange",
                       type(final).__name__)
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
        report.note(f"for comparison, a retry loop without a key placed {len(orders.of('carol'))} orders for "
                    f"one click (duplicates: {len(orders.of('carol')) - 1}); yours placed {len(orders.of('alice'))}")
