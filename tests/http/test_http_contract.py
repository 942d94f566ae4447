"""The HTTP contract (docs/ARCHITECTURE.md), row by row, for every design (who you are x where the cart lives), on a
server directly and through a balancer (input validation on one of each: see ENTRY_POINTS).

Real servers on loopback, real requests. Through the balancer, a stateful cluster shares a SQLite
store (round robin sends consecutive requests to different servers, so the contract only holds
when they share what they know); stateless servers share a keyring, cookie servers a secret, and
with cart="db" every server shares one cart table.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
import requests

import statelab as sl

MODES = ("stateful", "stateless", "cookie")
DESIGNS = [(m, c) for m in MODES for c in (sl.shop.app.DEFAULT_CART[m], "db")]
MIB = 1024 * 1024


@dataclass
class Target:
    mode: str
    via: str
    url: str
    owner: Any  # a Server or a Cluster
    cart: str = ""

    @property
    def cookie_name(self) -> str | None:
        return self.owner.cookie_name

    @property
    def cart_in_token(self) -> bool:
        return self.mode == "stateless" and self.owner.cart == "token"

    @property
    def server_names(self) -> set[str]:
        servers = self.owner.servers if isinstance(self.owner, sl.Cluster) else [self.owner]
        return {s.name for s in servers}

    @property
    def store(self) -> Any:
        return self.owner.store if isinstance(self.owner, sl.Cluster) else self.owner.store


@pytest.fixture(scope="module", params=[(m, c, v) for m, c in DESIGNS for v in ("direct", "balancer")],
                ids=lambda p: "-".join(p))
def target(request):
    mode, cart, via = request.param
    if via == "direct":
        owner = sl.Server(mode, cart=cart).start()
        url = owner.url
    else:
        owner = sl.Cluster(2, mode=mode, cart=cart, store="sqlite" if mode == "stateful" else "memory")
        url = owner.url
    try:
        yield Target(mode, via, url, owner, cart)
    finally:
        owner.stop()


#: Input validation runs in the app before any design-specific code (shop/app.py's ``_body``, ``_user_from`` and
#: ``_line_from``, and the error handlers), so it is tested once per entry point: one server answering directly,
#: one balancer in front of servers. Everything that differs by design runs on all twelve targets.
ENTRY_POINTS = pytest.mark.parametrize(
    "target", [("stateful", "session", "direct"), ("stateless", "token", "balancer")], indirect=True,
    ids=["direct", "balancer"])

_serial = itertools.count(1)


def unique(name: str) -> str:
    """A user name no other test of the module logs in with (carts in a shared table outlive a login)."""
    return f"{name}{next(_serial)}"


def header_values(r: requests.Response, name: str) -> list[str]:
    return r.raw.headers.getlist(name)


def check_common(r: requests.Response, target: Target) -> None:
    """What every answer carries, whatever it says."""
    served_by = r.headers.get("X-Served-By")
    assert served_by in target.server_names | {"balancer"}, (r.request.method, r.url, served_by)
    for single in ("Content-Type", "Date", "Server", "X-Served-By", "Cache-Control"):
        assert len(header_values(r, single)) <= 1, f"{single} appears twice: {header_values(r, single)}"
    if r.status_code != 304:
        assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
        assert isinstance(r.json(), dict)
    if r.status_code >= 400:
        assert isinstance(r.json().get("error"), str) and r.json()["error"]


class User:
    """One browser: keeps cookies like requests does, and the token like a single-page app."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.http = requests.Session()
        self.http.trust_env = False
        self.token: str | None = None

    def call(self, method: str, path: str, json: Any = None, headers: dict | None = None, **kw) -> requests.Response:
        sent = dict(headers or {})
        if self.token and "Authorization" not in sent:
            sent["Authorization"] = f"Bearer {self.token}"
        r = self.http.request(method, self.target.url + path, json=json, headers=sent, timeout=10, **kw)
        check_common(r, self.target)
        if r.status_code != 304 and isinstance(r.json().get("token"), str):
            self.token = r.json()["token"]
        return r

    def login(self, user: str = "alice") -> requests.Response:
        r = self.call("POST", "/login", {"user": user})
        assert r.status_code == 200, r.text
        return r

    def set_cookie(self, name: str, value: str) -> None:
        self.http.cookies.set(name, value, domain="127.0.0.1", path="/")

    @property
    def sid(self) -> str | None:
        return self.http.cookies.get(self.target.cookie_name or "-")


def test_health(target):
    r = User(target).call("GET", "/health")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"server", "mode", "cart", "sessions", "requests"}
    assert body["mode"] == target.mode and body["cart"] == target.cart
    assert body["server"] == r.headers["X-Served-By"] and body["server"] in target.server_names
    assert isinstance(body["sessions"], int) and isinstance(body["requests"], int) and body["requests"] >= 1


def test_login_answers_user_and_credentials(target):
    u = User(target)
    r = u.login("alice")
    body = r.json()
    assert body["user"] == "alice"
    cookies = header_values(r, "Set-Cookie")
    if target.mode == "stateless":
        assert set(body) == {"user", "token"}
        assert cookies == []  # nothing to remember on the browser's side but the token
        header = jwt.get_unverified_header(body["token"])
        claims = jwt.decode(body["token"], options={"verify_signature": False})
        assert header["alg"] == "HS256" and header["kid"]
        assert claims["sub"] == "alice" and {"iat", "exp", "jti"} <= set(claims)
    else:
        assert set(body) == {"user"}
        assert len(cookies) == 1
        name = target.cookie_name
        parts = [p.strip() for p in cookies[0].split(";")]
        assert parts[0].startswith(f"{name}=") and len(parts[0]) > len(name) + 20
        attrs = {p.split("=")[0].lower(): (p.split("=", 1)[1] if "=" in p else True) for p in parts[1:]}
        assert attrs.get("httponly") is True
        assert attrs.get("samesite") == "Lax"
        assert attrs.get("path") == "/"
        assert "expires" not in attrs and "max-age" not in attrs  # a session cookie
    if target.mode == "stateful":
        sid = u.sid
        assert re.fullmatch(r"[A-Za-z0-9_-]{43,}", sid), sid  # 256 random bits, URL-safe
        assert target.store.get(sid)["user"] == "alice"  # the server remembers, the cookie is only an id
        assert "alice" not in sid


def test_me_and_cart_need_credentials(target):
    anon = User(target)
    for method, path, body in (("GET", "/me", None), ("GET", "/cart", None), ("POST", "/cart", {"item": "book"})):
        r = anon.call(method, path, body)
        assert r.status_code == 401, (method, path, r.text)
        assert "log" in r.json()["error"].lower() or "token" in r.json()["error"].lower()


def test_me_and_cart_flow(target):
    u = User(target)
    name = unique("alice")  # with cart="db" a cart belongs to the user, across logins: a new user starts empty
    u.login(name)
    assert u.call("GET", "/me").json() == {"user": name}
    r = u.call("GET", "/cart")
    assert r.status_code == 200 and r.json() == {"cart": []}
    r = u.call("POST", "/cart", {"item": "book", "qty": 2})
    assert r.status_code == 200
    assert r.json()["cart"] == [{"item": "book", "qty": 2}]
    assert ("token" in r.json()) is target.cart_in_token  # a renewed token only when the cart is in it
    u.call("POST", "/cart", {"item": "book"})  # qty defaults to 1, same item adds up
    r = u.call("POST", "/cart", {"item": "ddia", "qty": 99})
    assert r.json()["cart"] == [{"item": "book", "qty": 3}, {"item": "ddia", "qty": 99}]
    for _ in range(4):  # through the balancer, each of these may be another server
        assert u.call("GET", "/cart").json()["cart"] == [{"item": "book", "qty": 3}, {"item": "ddia", "qty": 99}]
        assert u.call("GET", "/me").json() == {"user": name}


def test_users_do_not_see_each_other(target):
    alice, bob = User(target), User(target)
    alice.login(unique("alice"))
    bob.login(bob_name := unique("bob"))
    alice.call("POST", "/cart", {"item": "sicp"})
    assert bob.call("GET", "/cart").json() == {"cart": []}
    assert bob.call("GET", "/me").json() == {"user": bob_name}
    assert alice.call("GET", "/cart").json() == {"cart": [{"item": "sicp", "qty": 1}]}


def test_logout(target):
    u = User(target)
    u.login("alice")
    before = u.sid
    r = u.call("POST", "/logout")
    assert r.status_code == 200 and r.json()["logged_out"] is True
    if target.mode == "stateless":
        assert "note" in r.json()  # the server has nothing to delete; the token stays valid until exp
        assert u.call("GET", "/me").status_code == 200
        return
    cleared = header_values(r, "Set-Cookie")
    assert len(cleared) == 1 and cleared[0].startswith(f"{target.cookie_name}=;")
    assert "Max-Age=0" in cleared[0] and "HttpOnly" in cleared[0]
    assert u.call("GET", "/me").status_code == 401
    if target.mode == "stateful":
        assert target.store.get(before) is None  # deleted on the server, not just forgotten by the browser
        replay = User(target)
        replay.set_cookie(target.cookie_name, before)
        assert replay.call("GET", "/me").status_code == 401
        assert replay.call("POST", "/logout").json()["logged_out"] is False


def test_logout_without_login_is_fine(target):
    r = User(target).call("POST", "/logout")
    assert r.status_code == 200


@pytest.mark.parametrize("target", [("stateful", "session", "direct"), ("stateful", "session", "balancer")],
                         indirect=True, ids=["stateful-session-direct", "stateful-session-balancer"])
def test_new_session_id_at_every_login(target):
    u = User(target)
    u.set_cookie(target.cookie_name, "attacker-chosen-id")
    u.login("alice")
    first = u.sid
    assert first != "attacker-chosen-id"
    u.login("alice")
    second = u.sid
    assert second != first
    assert target.store.get(first) is None  # the id that existed before login is gone
    assert target.store.get(second)["user"] == "alice"
    stale = User(target)
    stale.set_cookie(target.cookie_name, first)
    assert stale.call("GET", "/me").status_code == 401
    ids = set()
    for _ in range(5):
        u.login("alice")
        ids.add(u.sid)
    assert len(ids) == 5


def test_private_answers_are_not_cached(target):
    vary = "Authorization" if target.mode == "stateless" else "Cookie"
    u = User(target)
    for r in (u.call("GET", "/me"), u.call("GET", "/cart")):  # 401s too: still about one user
        assert "no-store" in r.headers["Cache-Control"] or "private" in r.headers["Cache-Control"]
    u.login("alice")
    for r in (u.call("GET", "/me"), u.call("GET", "/cart"), u.call("POST", "/cart", {"item": "book"}),
              u.call("POST", "/login", {"user": "alice"})):
        cc = [p.strip() for p in r.headers["Cache-Control"].split(",")]
        assert "private" in cc and "no-store" in cc and "public" not in cc
        assert vary in [v.strip() for v in r.headers.get("Vary", "").split(",")]


def test_catalog_is_public_and_conditional(target):
    u = User(target)
    r = u.call("GET", "/catalog")
    assert r.status_code == 200
    items = r.json()["catalog"]
    assert {"item", "title", "price"} <= set(items[0]) and "book" in {i["item"] for i in items}
    cc = [p.strip() for p in r.headers["Cache-Control"].split(",")]
    assert "public" in cc and any(p.startswith("max-age=") for p in cc)
    etag = r.headers["ETag"]
    assert re.fullmatch(r'"[^"]+"', etag)
    again = u.call("GET", "/catalog", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["ETag"] == etag
    assert u.call("GET", "/catalog", headers={"If-None-Match": '"something-else"'}).status_code == 200
    assert u.call("GET", "/catalog", headers={"If-None-Match": "*"}).status_code == 304
    # the same catalog from any server has the same validator
    assert {u.call("GET", "/catalog").headers["ETag"] for _ in range(4)} == {etag}


@ENTRY_POINTS
@pytest.mark.parametrize("method,path,status", [
    ("GET", "/nope", 404), ("POST", "/nope", 404), ("GET", "/health/", 404), ("GET", "/login", 405),
    ("DELETE", "/cart", 405), ("PUT", "/me", 405), ("POST", "/catalog", 405), ("PATCH", "/logout", 405),
])
def test_404_and_405_are_json(target, method, path, status):
    r = User(target).call(method, path)
    assert r.status_code == status
    if status == 405:
        assert r.headers.get("Allow")
        assert method not in [m.strip() for m in r.headers["Allow"].split(",")]


@ENTRY_POINTS
def test_oversized_body_is_413_json(target):
    u = User(target)
    u.login("alice")
    for path in ("/login", "/cart"):
        r = u.call("POST", path, data=b"{" + b" " * MIB + b"}", headers={"Content-Type": "application/json"})
        assert r.status_code == 413, (path, r.status_code)
        assert "KiB" in r.json()["error"]
    r = u.call("POST", "/nope", data=b"x" * (MIB + 1))
    assert r.status_code in (404, 413)  # a server routes first; the balancer reads the body first
    assert u.call("GET", "/me").json() == {"user": "alice"}  # still up, still logged in


@ENTRY_POINTS
@pytest.mark.parametrize("user", [
    "", "a" * 65, "two words", "ä", "a/b", "<script>", "alice\n", "tab\t", 123, 1.5, None, True, ["alice"],
    {"name": "alice"},
])
def test_login_rejects_invalid_user(target, user):
    r = User(target).call("POST", "/login", {"user": user})
    assert r.status_code == 400
    assert "user" in r.json()["error"]
    assert header_values(r, "Set-Cookie") == [] and "token" not in r.json()


@ENTRY_POINTS
@pytest.mark.parametrize("body", [None, {}, {"name": "alice"}, [], ["alice"], "alice", 7])
def test_login_rejects_a_body_that_is_not_an_object_with_user(target, body):
    r = User(target).call("POST", "/login", body)
    assert r.status_code == 400


@ENTRY_POINTS
@pytest.mark.parametrize("user", ["a", "a" * 64, "A.b_c-9", "alice"])
def test_login_accepts_valid_user(target, user):
    assert User(target).login(user).json()["user"] == user


@pytest.fixture
def shopper(target) -> User:
    u = User(target)
    u.login(unique("carol"))
    u.call("POST", "/cart", {"item": "book", "qty": 1})
    return u


@ENTRY_POINTS
@pytest.mark.parametrize("line", [
    {"item": "book", "qty": 0}, {"item": "book", "qty": 100},
    {"item": "book", "qty": 1.5}, {"item": "book", "qty": 1.0}, {"item": "book", "qty": "1"},
    {"item": "book", "qty": True}, {"item": "book", "qty": None}, {"item": "book", "qty": [1]},
    {"item": "book", "qty": 10**30}, {"item": "", "qty": 1}, {"item": "x" * 65}, {"item": 7}, {"item": None},
    {"qty": 1}, {"item": ["book"]},
])
def test_cart_rejects_invalid_lines(target, shopper, line):
    r = shopper.call("POST", "/cart", line)
    assert r.status_code == 400
    assert "qty" in r.json()["error"] or "item" in r.json()["error"]
    assert shopper.call("GET", "/cart").json()["cart"] == [{"item": "book", "qty": 1}]  # unchanged


def test_cart_accepts_qty_bounds(target, shopper):
    assert shopper.call("POST", "/cart", {"item": "sre", "qty": 99}).status_code == 200
    assert shopper.call("POST", "/cart", {"item": "sicp", "qty": 1}).status_code == 200
    assert shopper.call("GET", "/cart").json()["cart"][-2:] == [{"item": "sre", "qty": 99}, {"item": "sicp", "qty": 1}]


def test_served_by_names_a_real_server(target):
    u = User(target)
    seen = {u.call("GET", "/health").headers["X-Served-By"] for _ in range(6)}
    assert seen <= target.server_names
    if target.via == "balancer":
        assert seen == target.server_names  # round robin: each server answered


# --------------------------------------------------------------------------- stateless specifics

def test_stateless_cart_travels_in_the_token(cluster):
    c = cluster(3, mode="stateless")
    u = User(Target("stateless", "balancer", c.url, c))
    u.login("alice")
    u.call("POST", "/cart", {"item": "book", "qty": 2})
    r = u.call("POST", "/cart", {"item": "ddia"})
    token = r.json()["token"]
    report = sl.inspect_token(token, c.keyring)
    assert report.ok
    assert report.claims["sub"] == "alice"
    assert report.claims["cart"] == [{"item": "book", "qty": 2}, {"item": "ddia", "qty": 1}] == r.json()["cart"]
    assert all(s.sessions == 0 for s in c.servers)  # nothing per user on any server
    assert all(s.store is None for s in c.servers)
    # an old token still carries the old cart: the state is in the client's hands
    old = User(Target("stateless", "balancer", c.url, c))
    old.token = u.token
    u.call("POST", "/cart", {"item": "sre"})
    assert len(old.call("GET", "/cart").json()["cart"]) == 2
    assert len(u.call("GET", "/cart").json()["cart"]) == 3


def test_stateless_servers_accept_each_others_tokens(cluster):
    c = cluster(3, mode="stateless")
    u = User(Target("stateless", "balancer", c.url, c))
    u.login("alice")
    u.call("POST", "/cart", {"item": "book"})
    for server in c.servers:
        direct = User(Target("stateless", "direct", server.url, server))
        direct.token = u.token
        r = direct.call("GET", "/cart")
        assert r.status_code == 200 and r.headers["X-Served-By"] == server.name
        assert r.json()["cart"] == [{"item": "book", "qty": 1}]
    # a token from a server of another cluster (another keyring) is refused everywhere
    with sl.Server("stateless") as stranger:
        stranger.start()
        outsider = User(Target("stateless", "direct", stranger.url, stranger))
        outsider.login("alice")
        for server in c.servers:
            direct = User(Target("stateless", "direct", server.url, server))
            direct.token = outsider.token
            assert direct.call("GET", "/me").status_code == 401


def test_stateless_token_survives_restart_of_the_issuing_server(cluster, stateless):
    c = cluster(2, mode="stateless")
    for owner, server in ((c, c.servers[0]), (stateless, stateless)):
        u = User(Target("stateless", "direct", server.url, server))
        u.login("alice")
        assert u.call("POST", "/cart", {"item": "book"}).headers["X-Served-By"] == server.name
        url = server.url
        if owner is c:
            c.restart(0)
        else:
            server.restart()
        assert server.url == url and server.alive
        r = u.call("GET", "/cart")
        assert r.status_code == 200 and r.json()["cart"] == [{"item": "book", "qty": 1}]


def test_stateful_memory_session_does_not_survive_restart(stateful):
    u = User(Target("stateful", "direct", stateful.url, stateful))
    u.login("alice")
    stateful.restart()
    assert u.call("GET", "/me").status_code == 401
