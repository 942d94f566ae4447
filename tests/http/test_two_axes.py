"""Two independent choices: who you are (mode) and where the cart lives (cart).

With cart="db" the credential carries identity only: its size does not grow with the cart, any server
answers, the cart survives every server crash and follows the user to a second browser. Real servers
on loopback, real requests.
"""

from __future__ import annotations

import hashlib
import os

import pytest

import statelab as sl
from statelab.shop.app import create_app

# item names that do not compress away (Flask deflates a signed cookie when that makes it shorter)
ITEMS = [hashlib.sha256(str(i).encode()).hexdigest()[:24] for i in range(50)]


# --------------------------------------------------------------------------- the API


@pytest.mark.parametrize("mode,cart", [("stateful", "token"), ("stateless", "session"), ("cookie", "session")])
def test_a_design_that_does_not_fit_is_a_clear_value_error(mode, cart):
    before = set(sl.service.registry.live())  # what earlier tests registered (stopped or not) is theirs
    for make in (lambda: create_app(mode, cart=cart), lambda: sl.Server(mode, cart=cart),
                 lambda: sl.serve(mode, cart=cart), lambda: sl.Cluster(1, mode, cart=cart)):
        with pytest.raises(ValueError, match=rf"cart='{cart}' does not fit mode='{mode}'.*cart='db'"):
            make()
    assert set(sl.service.registry.live()) <= before  # nothing started, not even registered


def test_unknown_cart_and_defaults():
    with pytest.raises(ValueError, match="cart must be one of session, token, db"):
        sl.Server("stateless", cart="redis")
    assert [sl.Server(m).cart for m in ("stateful", "stateless", "cookie")] == ["session", "token", "token"]


def _cart_bytes(client: sl.Client, cookie: str | None) -> int:
    """What the browser carries for its login: the token, or the signed cookie."""
    return len(client.token or "") if cookie is None else len(client.cookies[cookie])


@pytest.mark.parametrize("mode", ["stateless", "cookie"])
def test_credential_size_is_flat_with_cart_db_and_grows_with_cart_token(mode):
    sizes = {}
    for cart in ("token", "db"):
        with sl.Server(mode, cart=cart) as server:
            server.start()
            c = sl.Client(server.url)
            c.login("alice")
            measured = [_cart_bytes(c, server.cookie_name)]
            for n, item in enumerate(ITEMS[:50], 1):
                assert c.add_to_cart(item).ok, c.last
                if n in (10, 50):
                    measured.append(_cart_bytes(c, server.cookie_name))
            assert len(c.cart().body["cart"]) == 50
            sizes[cart] = measured
    assert sizes["db"][0] == sizes["db"][1] == sizes["db"][2], sizes  # identity only
    assert sizes["token"][0] < sizes["token"][1] < sizes["token"][2], sizes
    assert sizes["token"][2] > 4 * sizes["db"][2], sizes  # 50 lines of ~40 bytes each


@pytest.mark.parametrize("mode", ["stateful", "stateless", "cookie"])
def test_cart_db_any_server_answers_and_the_cart_survives_every_crash(cluster, mode):
    # stateful with store="memory" (sticky, so the session's server answers): sessions die with it, carts do not
    c = cluster(3, mode, cart="db", balancer="sticky" if mode == "stateful" else "round_robin")
    alice = sl.Client(c.url)
    alice.login("alice")
    for item in ("book", "ddia", "sre"):
        assert alice.add_to_cart(item).ok
    want = [{"item": i, "qty": 1} for i in ("book", "ddia", "sre")]
    assert c.carts.count() == 1 and c.carts.get("alice") == want
    if mode != "stateful":  # the credential alone is enough: each server, directly, gives the same cart
        for server in c.servers:
            direct = sl.Client(server.url)
            direct.token, direct._http.cookies = alice.token, alice._http.cookies
            assert direct.cart().body == {"cart": want} and direct.last.served_by == server.name
    for i in range(3):
        c.kill(i)
    for i in range(3):
        c.restart(i)
    if mode == "stateful":
        assert alice.cart().status == 401  # the session was in a server's memory ...
        alice.login("alice")                 # ... the cart was not
    for _ in range(3):
        assert alice.cart().body == {"cart": want}


@pytest.mark.parametrize("mode", ["stateful", "stateless", "cookie"])
def test_cart_db_follows_the_user_to_a_second_client(cluster, mode):
    c = cluster(2, mode, cart="db", store="sqlite" if mode == "stateful" else "memory")
    laptop, phone = sl.Client(c.url), sl.Client(c.url)
    laptop.login("alice")
    laptop.add_to_cart("book", 2)
    phone.login("alice")
    assert phone.cart().body == {"cart": [{"item": "book", "qty": 2}]}
    phone.add_to_cart("sicp")
    assert laptop.cart().body == {"cart": [{"item": "book", "qty": 2}, {"item": "sicp", "qty": 1}]}
    bob = sl.Client(c.url)
    bob.login("bob")
    assert bob.cart().body == {"cart": []}


@pytest.mark.parametrize("mode,cart", [("stateless", "token"), ("cookie", "token"), ("stateful", "session")])
def test_without_cart_db_a_second_client_starts_empty(cluster, mode, cart):
    c = cluster(2, mode, cart=cart, store="sqlite" if mode == "stateful" else "memory")
    laptop, phone = sl.Client(c.url), sl.Client(c.url)
    laptop.login("alice")
    laptop.add_to_cart("book")
    phone.login("alice")
    assert phone.cart().body == {"cart": []}  # the cart was in the other browser's credential or session


def test_cluster_cart_table_is_sqlite_in_its_temp_folder_and_goes_at_stop():
    c = sl.Cluster(2, "stateless", cart="db")
    path = c.carts.path
    assert c.carts.kind == "sqlite" and os.path.exists(path)
    assert all(s.carts is c.carts for s in c.servers)
    c.stop()
    assert not os.path.exists(os.path.dirname(path))


def test_a_cart_table_passed_in_is_shared_and_left_open(cluster):
    table = sl.shop.carts.MemoryCartStore()
    one = cluster(1, "stateless", cart="db", carts=table)
    two = cluster(1, "cookie", cart="db", carts=table)  # two clusters, one database
    alice = sl.Client(one.url)
    alice.login("alice")
    alice.add_to_cart("book")
    one.stop()
    again = sl.Client(two.url)
    again.login("alice")
    assert again.cart().body == {"cart": [{"item": "book", "qty": 1}]} and table.count() == 1
    with pytest.raises(ValueError, match="carts="):
        sl.Cluster(1, "stateless", carts=table)


def test_standalone_cart_db_has_its_own_table_that_outlives_a_crash():
    a, b = sl.serve("stateless", cart="db"), sl.serve("stateless", cart="db")
    try:
        assert a.carts is not None and a.carts is not b.carts
        alice = sl.Client(a.url)
        alice.login("alice")
        alice.add_to_cart("book")
        a.restart()
        assert alice.cart().body == {"cart": [{"item": "book", "qty": 1}]}
        other = sl.Client(b.url)
        other.login("alice")
        assert other.cart().body == {"cart": []}  # another server's own database
    finally:
        a.stop()
        b.stop()


def test_plugins_see_the_cart_wherever_it_lives(cluster):
    from flask import jsonify

    def count(app):
        state = app.extensions["statelab"]

        @app.get("/count")
        def count_view():
            user, data = state["current"]()
            return jsonify(user=user, lines=len(data["cart"]), where=state["cart"])

    c = cluster(2, "stateless", cart="db", plugins=[count])
    alice = sl.Client(c.url)
    alice.login("alice")
    alice.add_to_cart("book")
    alice.add_to_cart("sre")
    assert alice.get("/count").body == {"user": "alice", "lines": 2, "where": "db"}


def test_health_and_sessions_say_where_state_lives(cluster):
    c = cluster(2, "stateful", cart="db", store="sqlite")
    alice = sl.Client(c.url)
    alice.login("alice")
    alice.add_to_cart("book")
    assert alice.health().body["cart"] == "db"
    assert c.sessions() == {"server-0": 1, "server-1": 1}  # one session, seen by both through the shared store
    assert c.carts.count() == 1


@pytest.mark.parametrize("mode,cart", [(m, c) for m in ("stateful", "stateless", "cookie")
                                       for c in (sl.shop.app.DEFAULT_CART[m], "db")])
def test_a_plugin_changes_the_cart_wherever_it_lives(cluster, mode, cart):
    """A checkout written once with change_cart() empties the cart in every design, atomically."""
    from flask import jsonify

    orders: list[tuple[str, list]] = []

    def checkout(app):
        state = app.extensions["statelab"]

        @app.post("/checkout")
        def checkout_view():
            user, _ = state["current"]()
            taken: list[list] = []

            def empty(cart):
                taken.append(cart)
                return []

            _, reply = state["change_cart"](empty)
            orders.append((user, taken[0]))
            return jsonify(order=len(orders), **reply), 201

    c = cluster(2, mode, cart=cart, store="sqlite" if mode == "stateful" else "memory", plugins=[checkout])
    alice = sl.Client(c.url)
    alice.login("alice")
    alice.add_to_cart("book", 2)
    assert alice.post("/checkout").status == 201
    assert orders == [("alice", [{"item": "book", "qty": 2}])]
    assert alice.cart().body == {"cart": []}
