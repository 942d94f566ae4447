"""Row "transaction_integrity": the evidence, the naive store's race, idempotency keys and the checkout routes."""

from __future__ import annotations

import threading

import pytest

import statelab as sl
from statelab.experiments import VERDICTS
from statelab.experiments import transaction_integrity as ti


def test_run_quick_reaches_a_verdict_from_its_checks():
    ev = ti.run(quick=True)
    assert ev.row == "transaction_integrity" and ev.verdict in VERDICTS
    assert ev.checks and all(ev.checks.values()), ev.checks
    lost = ev.measurements["lost updates"]
    assert lost["stateful, naive store"] > 0 and lost["stateless (tokens)"] > 0
    assert lost["stateful, memory store"] == 0 and lost["stateful, sqlite store"] == 0
    orders = ev.measurements["orders after a retried confirm"]
    assert orders["stateless"] == 2 and orders["stateless + Idempotency-Key"] == 1
    assert ev.verdict == "does not hold"


def test_run_refuses_silly_sizes():
    with pytest.raises(ValueError):
        ti.run(adds=0)


def add_one(session: dict) -> dict:
    return {**session, "n": session["n"] + 1}


@pytest.mark.parametrize("store, loses", [(ti.NaiveStore(delay=0.01), True), (sl.MemoryStore(), False)],
                         ids=["naive", "memory"])
def test_naive_store_loses_concurrent_updates_and_memory_store_does_not(store, loses):
    sid = store.create({"user": "alice", "n": 0}, ttl=60)
    gate = threading.Barrier(6)

    def work():
        gate.wait()
        store.update(sid, add_one)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (store.get(sid)["n"] < 6) is loses


def test_idempotency_keys_act_once_per_user_and_key():
    keys, calls = ti.IdempotencyKeys(), []

    def act():
        calls.append(1)
        return 201, {"order": f"o{len(calls)}"}

    assert keys.once(("alice", "k1"), act) == (201, {"order": "o1"}, False)
    assert keys.once(("alice", "k1"), act) == (201, {"order": "o1"}, True)  # replayed, not re-run
    assert keys.once(("bob", "k1"), act)[1] == {"order": "o2"}  # another user's key is another key
    assert len(calls) == 2 and len(keys) == 2


@pytest.fixture(params=["stateful", "stateless"])
def shop(request):
    orders = ti.OrderBook()
    with sl.Server(request.param, plugins=[ti.checkout(orders, ti.IdempotencyKeys())]) as server:
        server.start()
        yield server, orders


def test_checkout_routes_answer_clear_errors_and_place_one_order(shop):
    server, orders = shop
    alice = sl.Client(server.url)
    assert alice.post("/checkout/start").status == 401
    alice.login("alice")
    empty = alice.post("/checkout/start")
    assert empty.status == 409 and "empty" in empty.body["error"]
    assert alice.post("/checkout/confirm").status == 409  # nothing started
    alice.add_to_cart("sicp", qty=2)
    started = alice.post("/checkout/start")
    assert started.status == 200 and started.body["checkout"]["items"] == [{"item": "sicp", "qty": 2}]
    assert alice.post("/checkout/confirm", headers={"Idempotency-Key": "bad key!"}).status == 400
    done = alice.post("/checkout/confirm", headers={"Idempotency-Key": "k-1"})
    assert done.status == 201 and done.body["order"]["items"] == [{"item": "sicp", "qty": 2}]
    assert done.headers["Cache-Control"] == "private, no-store"
    replay = alice.post("/checkout/confirm", headers={"Idempotency-Key": "k-1"})
    assert replay.status == 201 and replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.body["order"] == done.body["order"]
    assert len(orders) == 1 and [o["order"] for o in alice.get("/orders").body["orders"]] == [
        done.body["order"]["order"]]
    assert alice.cart().body["cart"] == []  # the cart was emptied by the order


def test_checkout_plugin_refuses_the_cookie_mode():
    with pytest.raises(ValueError, match="stateful and stateless"):
        sl.create_app("cookie", plugins=[ti.checkout(ti.OrderBook())])
