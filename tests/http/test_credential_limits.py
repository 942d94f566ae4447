"""What a credential that carries the cart can hold, and what it must never do (issue 9 items 4 and 5,
issue 8 item 7).

* A write that would make the token longer than servers accept, or the signed cookie longer than a
  browser keeps (4 KiB), is refused with 413 and a clear message; the user keeps the session and cart.
* A validly signed credential whose cart lines are malformed gets a JSON 4xx, never a 500.
* The signed cookie carries its own expiry (``session_ttl`` after login), which the server checks.
"""

from __future__ import annotations

import random
import string
import time

import pytest
import requests

import statelab as sl
from statelab.shop.tokens import MAX_TOKEN

COOKIE_LIMIT = 4093  # what werkzeug and browsers allow for one Set-Cookie (name, value and attributes)
ALPHABET = string.ascii_letters + string.digits  # random names: Flask's deflate cannot shrink them


def long_items(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(64)) for _ in range(n)]


def test_the_token_never_outgrows_the_server_and_the_user_keeps_the_cart(stateless):
    alice = sl.Client(stateless.url)
    alice.login("alice")
    statuses = []
    for item in long_items(200):
        ex = alice.add_to_cart(item)
        statuses.append(ex.status)
        assert ex.status in (200, 413), ex
        assert len(alice.token) <= MAX_TOKEN
        if ex.status == 413:
            assert "token" in ex.body["error"] and "unchanged" in ex.body["error"]
            break
    assert statuses[-1] == 413, f"no refusal in {len(statuses)} long items"
    kept = alice.cart()
    assert kept.status == 200 and len(kept.body["cart"]) == len(statuses) - 1  # every line but the refused one
    assert alice.me().ok and alice.add_to_cart(kept.body["cart"][0]["item"]).ok  # more of a line it holds: fine


def test_the_signed_cookie_never_passes_4_kib_and_the_user_keeps_the_cart():
    with sl.Server("cookie") as jar:
        jar.start()
        http = requests.Session()
        http.trust_env = False
        assert http.post(f"{jar.url}/login", json={"user": "alice"}, timeout=10).ok
        added = 0
        for item in long_items(200):
            r = http.post(f"{jar.url}/cart", json={"item": item}, timeout=10)
            assert r.status_code in (200, 413), r.text
            for header in r.raw.headers.getlist("Set-Cookie"):
                assert len(header) <= COOKIE_LIMIT, f"a {len(header)}-byte cookie after {added} lines"
            if r.status_code == 413:
                assert "4093" in r.json()["error"] and "unchanged" in r.json()["error"]
                break
            added += 1
        assert 10 < added < 200
        kept = http.get(f"{jar.url}/cart", timeout=10)
        assert kept.status_code == 200 and len(kept.json()["cart"]) == added


BAD_CARTS = [
    "all the books", 7, {"item": "book"}, [1], [None], [["book", 1]], [{"item": None, "qty": 1}],
    [{"item": "book"}], [{"qty": 1}], [{"item": "book", "qty": "2"}], [{"item": "book", "qty": 0}],
    [{"item": "book", "qty": -3}], [{"item": "book", "qty": 1.5}], [{"item": "book", "qty": True}],
    [{"item": "book", "qty": 10**30}], [{"item": "<script>", "qty": 1}], [{"item": "book", "qty": 1, "x": 2}],
    [{"item": "book", "qty": 1}] * 201,
]


def _answers_json_4xx(ex: sl.Exchange) -> None:
    assert ex.status is not None and 400 <= ex.status < 500, ex
    assert isinstance(ex.body, dict) and isinstance(ex.body.get("error"), str), ex


@pytest.mark.parametrize("cart", BAD_CARTS, ids=range(len(BAD_CARTS)))
def test_a_signed_token_with_a_malformed_cart_is_a_json_4xx(stateless, cart):
    mallory = sl.Client(stateless.url)
    mallory.token = stateless.keyring.issue("mallory", 60, cart=cart)
    for ex in (mallory.add_to_cart("book"), mallory.cart()):
        _answers_json_4xx(ex)
    assert "cart" in mallory.last.body["error"]


@pytest.mark.parametrize("cart", BAD_CARTS[:8], ids=range(8))
def test_a_signed_cookie_with_a_malformed_cart_is_a_json_4xx(cart):
    with sl.Server("cookie") as jar:
        jar.start()
        serializer = jar.app.session_interface.get_signing_serializer(jar.app)
        forged = serializer.dumps({"user": "mallory", "cart": cart, "exp": time.time() + 60})
        mallory = sl.Client(jar.url)
        mallory.set_cookie(jar.cookie_name, forged)
        for ex in (mallory.add_to_cart("book"), mallory.cart()):
            _answers_json_4xx(ex)


def test_the_signed_cookie_expires_after_session_ttl_and_a_write_does_not_extend_it():
    with sl.Server("cookie", session_ttl=1) as jar:
        jar.start()
        alice = sl.Client(jar.url)
        alice.login("alice")
        assert alice.me().ok
        time.sleep(0.6)
        assert alice.add_to_cart("book").ok  # a write re-signs the cookie ...
        time.sleep(0.6)
        ended = alice.me()  # ... but the login's lifetime is what it was
        assert ended.status == 401 and "expired" in ended.body["error"]


def test_a_signed_cookie_lives_session_ttl_not_31_days():
    with sl.Server("cookie", session_ttl=120) as jar:
        jar.start()
        alice = sl.Client(jar.url)
        alice.login("alice")
        value = alice.cookies[jar.cookie_name]
        data = jar.app.session_interface.get_signing_serializer(jar.app).loads(value)
        assert 110 < data["exp"] - time.time() <= 120
