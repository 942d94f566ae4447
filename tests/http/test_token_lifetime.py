"""A renewed token belongs to the login it came from (issue 9 items 2 and 11).

Every cart write in a "cart in the token" design re-signs the token. The renewal keeps the login's ``jti``
and ``auth_time`` and never pushes ``exp`` past ``auth_time + token_max_age``: a thief who writes once
per lifetime no longer stays in for ever, and a deny list of ``jti`` (lab 02) covers every renewal.
Signing reads the current key id once, so a rotation cannot label a token with a key that did not sign it.
"""

from __future__ import annotations

import time

from flask import jsonify, request

import statelab as sl
from statelab import Keyring, TokenError


def claims(token: str) -> dict:
    return sl.inspect_token(token).claims


def test_a_renewed_token_keeps_the_login_and_its_expiry(stateless):
    alice = sl.Client(stateless.url)
    alice.login("alice")
    first = claims(alice.token)
    time.sleep(1.1)  # exp has whole seconds: a renewal a second later would have moved it
    alice.add_to_cart("book")
    renewed = claims(alice.token)
    assert renewed["cart"] == [{"item": "book", "qty": 1}]
    assert renewed["jti"] == first["jti"] and renewed["auth_time"] == first["auth_time"] == first["iat"]
    assert renewed["exp"] == first["exp"] and renewed["iat"] > first["iat"]


def test_a_thief_who_writes_does_not_outlive_the_login():
    with sl.Server("stateless", token_ttl=3) as shop:
        shop.start()
        alice = sl.Client(shop.url)
        alice.login("alice")
        thief = sl.Client(shop.url)
        thief.token = alice.token
        expires = claims(alice.token)["exp"]  # whole seconds: 2 to 3 s from now
        time.sleep(max(0.0, expires - time.time() - 0.8))  # a write late in the token's life
        assert thief.add_to_cart("book").ok  # a fresh token in the thief's hands ...
        assert claims(thief.token)["exp"] == expires  # ... that ends when the login does
        time.sleep(max(0.0, expires - time.time()) + 0.3)
        refused = thief.me()
        assert refused.status == 401 and "expired" in refused.body["error"]


def test_max_age_caps_a_longer_renewal():
    keyring = Keyring()
    now = int(time.time())
    login = {"sub": "alice", "iat": now - 100, "exp": now + 20, "jti": "login-1", "auth_time": now - 100,
             "cart": []}
    renewed = keyring.verify(keyring.renew(login, 60, max_age=130, cart=[{"item": "book", "qty": 1}]))
    assert renewed["exp"] == now - 100 + 130 and renewed["jti"] == "login-1"
    assert renewed["cart"] == [{"item": "book", "qty": 1}]
    longer = keyring.verify(keyring.renew(login, 60, max_age=3600))
    assert longer["exp"] - longer["iat"] in (60, 61)  # within the cap, a renewal gives ttl from now


def deny_list_plugin(denied: dict[str, float]):
    """Lab 02's answer, as the learner writes it: revoke the jti at logout, refuse revoked jtis."""

    def plugin(app):
        keyring = app.extensions["statelab"]["keyring"]

        @app.before_request
        def refuse_revoked():
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer "):
                return None
            try:
                c = keyring.verify(auth[7:].strip())
            except TokenError:
                return None
            if denied.get(c["jti"], 0) > time.time():
                return jsonify(error="this token was revoked at logout"), 401
            if request.method == "POST" and request.path == "/logout":
                denied[c["jti"]] = c["exp"]
            return None

    return plugin


def test_a_jti_deny_list_revokes_the_renewed_tokens_too(cluster):
    c = cluster(3, "stateless", plugins=[deny_list_plugin({})])
    alice = sl.Client(c.url)
    alice.login("alice")
    thief = sl.Client(c.url)
    thief.token = alice.token  # stolen right after login
    assert thief.add_to_cart("book").ok and thief.token != alice.token  # renewed by a write
    assert alice.logout().ok  # alice logs out with the token she holds
    for server in c.servers:
        replay = sl.Client(server.url)
        replay.token = thief.token
        assert replay.me().status == 401, server.name


class RotatesWhileSigning(Keyring):
    """A keyring where another thread's ``rotate()`` lands right after the first read of ``current_kid``."""

    def __init__(self) -> None:
        self.armed = False
        super().__init__()

    @property
    def current_kid(self) -> str:
        kid = self._kid
        if self.armed:
            self.armed = False
            self.rotate()  # the other thread
        return kid

    @current_kid.setter
    def current_kid(self, kid: str) -> None:
        self._kid = kid


def test_signing_reads_the_key_id_once():
    keyring = RotatesWhileSigning()
    keyring.armed = True
    token = keyring.issue("alice", 60)
    assert keyring.verify(token)["sub"] == "alice"  # the kid in its header names the key that signed it
    assert len(keyring.kids) == 2
