"""A barrage of malformed and hostile requests, sent as raw bytes over real sockets.

Each request goes to a stateless server directly and to stateful servers through a balancer (each entry
point once, each mode once). Every
answer must be JSON with an "error" and a 4xx status (never a 5xx: bad input is not a crash; even an
unsupported HTTP version gets a 400 rather than 505), the server must still be up, and
a victim who logged in before the barrage must still have the same session and cart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

import statelab as sl

MIB = 1024 * 1024


# --------------------------------------------------------------------------- raw HTTP

@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def exchange(port: int, data: bytes, timeout: float = 10.0) -> Answer:
    """Send ``data`` as is, half-close, and read one response (skipping ``100 Continue``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before reading everything we had to say
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(65536)
                assert chunk, f"connection closed before a complete response: {buf[:200]!r}"
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            version, status, *_ = lines[0].split(" ", 2)
            assert version.startswith("HTTP/1."), f"not an HTTP status line: {lines[0]!r}"
            if status != "100":
                break
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            assert name.lower() not in headers or name.lower() == "set-cookie", f"{name} sent twice"
            headers[name.lower()] = value.strip()
        length = int(headers.get("content-length", "-1"))
        while len(buf) < length or length < 0:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return Answer(int(status), headers, buf[:length] if length >= 0 else buf)


def http(method: str = "GET", path: str = "/me", headers: list[tuple[str, str]] | list[bytes] = (),
         body: bytes | None = None, version: str = "HTTP/1.1") -> bytes:
    """A request as bytes; a Content-Length is added for a body unless a header already frames it, and a
    JSON Content-Type unless one is given (as every well-behaved client sends; the guard refuses others)."""
    lines = [f"{method} {path} {version}".encode("latin-1", "surrogateescape") if isinstance(path, str) else path,
             b"Host: 127.0.0.1"]
    framed = typed = False
    for h in headers:
        if isinstance(h, tuple):
            framed |= h[0].lower() in ("content-length", "transfer-encoding")
            typed |= h[0].lower() == "content-type"
            h = f"{h[0]}: {h[1]}".encode("latin-1")
        lines.append(h)
    if body is not None and not typed:
        lines.append(b"Content-Type: application/json")
    if body is not None and not framed:
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def chunked(payload: bytes, size: int = 65536) -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + size]), payload[i:i + size])
                   for i in range(0, len(payload), size))
    return out + b"0\r\n\r\n"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --------------------------------------------------------------------------- the arenas

@dataclass
class Arena:
    mode: str
    via: str
    port: int
    owner: Any
    keyring: sl.Keyring
    victim: sl.Client
    victim_cart: list
    attacker: sl.Client
    extra: dict = field(default_factory=dict)

    @property
    def sid_name(self) -> str:
        """The name of the session cookie of the server(s) under attack (each server names its own)."""
        return self.owner.cookie_name or "sid"

    @property
    def token(self) -> str:
        """A valid token for the attacker's own account (in stateful mode, from a spare keyring)."""
        return self.extra["token"]

    def auth(self) -> list[tuple[str, str]]:
        """The attacker's own, valid credentials, so a request gets past the login check."""
        if self.mode == "stateless":
            return [("Authorization", f"Bearer {self.attacker.token}")]
        return [("Cookie", f"{self.sid_name}={self.attacker.cookies[self.sid_name]}")]

    def signed(self, header: dict, claims: dict, key: bytes | None = None) -> str:
        """A token signed by hand with the real HS256 key (or ``key``)."""
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        key = self.keyring.signing_key() if key is None else key
        return f"{signing_input}.{b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())}"

    def claims(self, **override: Any) -> dict:
        now = int(time.time())
        return {"sub": "mallory", "iat": now, "exp": now + 300, "jti": "j1", "cart": [], **override}

    def header(self, **override: Any) -> dict:
        return {"alg": "HS256", "typ": "JWT", "kid": self.keyring.current_kid, **override}


# One direct server and one balancer (each entry point once), and each mode once: the token attacks meet a
# server that checks tokens, the cookie attacks one that keeps sessions, and the balancer's own parsing.
@pytest.fixture(scope="module", params=[("stateless", "direct"), ("stateful", "balancer")],
                ids=lambda p: f"{p[0]}-{p[1]}")
def arena(request):
    mode, via = request.param
    if via == "direct":
        owner = sl.Server(mode).start()
        url, keyring = owner.url, owner.keyring
    else:
        owner = sl.Cluster(2, mode=mode, store="sqlite" if mode == "stateful" else "memory")
        url, keyring = owner.url, owner.keyring
    try:
        victim, attacker = sl.Client(url), sl.Client(url)
        assert victim.login("victim").status == 200
        victim.add_to_cart("ddia", qty=2)
        cart = victim.add_to_cart("sicp", qty=1).body["cart"]
        assert attacker.login("mallory").status == 200
        keyring = keyring or sl.Keyring("HS256")  # stateful: tokens are still hostile input
        a = Arena(mode, via, urlsplit(url).port, owner, keyring, victim, cart, attacker)
        a.extra["token"] = attacker.token or keyring.issue("mallory", 300, cart=[])
        yield a
        # after the whole barrage: the victim is still fine
        assert victim.me().body == {"user": "victim"}
        assert victim.cart().body == {"cart": cart}
    finally:
        owner.stop()


def flip(text: str, at: int = -5) -> str:
    i = at % len(text)
    return text[:i] + ("A" if text[i] != "A" else "B") + text[i + 1:]


def tamper_claims(a: Arena, **change: Any) -> str:
    h, c, s = a.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(c + "=" * (-len(c) % 4)))
    claims.update(change)
    return f"{h}.{b64(json.dumps(claims).encode())}.{s}"


def bearer(build: Callable[[Arena], str], method: str = "GET", path: str = "/me",
           body: bytes | None = None) -> Callable[[Arena], bytes]:
    return lambda a: http(method, path, [("Authorization", f"Bearer {build(a)}")], body)


def cookie(value: Callable[[Arena], str] | str) -> Callable[[Arena], bytes]:
    """A request with this Cookie header; "sid" in a plain string stands for the server's own cookie name."""
    return lambda a: http("GET", "/me", [("Cookie", value(a) if callable(value) else value.replace("sid", a.sid_name))])


def login_body(body: bytes, extra: list = ()) -> Callable[[Arena], bytes]:
    return lambda a: http("POST", "/login", list(extra) or [("Content-Type", "application/json")], body)


def cart_body(body: bytes) -> Callable[[Arena], bytes]:
    return lambda a: http("POST", "/cart", [("Content-Type", "application/json"), *a.auth()], body)


def raw(data: bytes) -> Callable[[Arena], bytes]:
    return lambda a: data


AUTH = {401}
TOO_BIG = {413}
ANY_4XX = None

# (id, request builder, expected status codes or None for "any 4xx")
CASES: list[tuple[str, Callable[[Arena], bytes], set[int] | None]] = [
    # --- tokens ---------------------------------------------------------------------------
    ("auth-bearer-no-token", lambda a: http(headers=[("Authorization", "Bearer")]), AUTH),
    ("auth-bearer-space", lambda a: http(headers=[b"Authorization: Bearer    "]), AUTH),
    ("auth-basic", lambda a: http(headers=[("Authorization", "Basic bWFsbG9yeTpzZWNyZXQ=")]), AUTH),
    ("auth-lowercase-scheme", lambda a: http(headers=[("Authorization", f"bearer {a.token}x")]), AUTH),
    ("token-garbage", bearer(lambda a: "not-a-token"), AUTH),
    ("token-a.b.c", bearer(lambda a: "a.b.c"), AUTH),
    ("token-four-parts", bearer(lambda a: a.token + ".extra"), AUTH),
    ("token-dots-only", bearer(lambda a: "..."), AUTH),
    ("token-tampered-sub", bearer(lambda a: tamper_claims(a, sub="victim")), AUTH),
    ("token-tampered-cart", bearer(lambda a: tamper_claims(a, cart=[{"item": "book", "qty": 1000}]), "POST",
                                   "/cart", b'{"item": "book"}'), AUTH),
    ("token-truncated-signature", bearer(lambda a: a.token[:-10]), AUTH),
    ("token-flipped-signature", bearer(lambda a: flip(a.token)), AUTH),
    ("token-no-signature", bearer(lambda a: a.token.rsplit(".", 1)[0] + "."), AUTH),
    ("token-expired", bearer(lambda a: a.keyring.issue("mallory", -30, cart=[])), AUTH),
    ("token-alg-none", bearer(lambda a: a.signed(a.header(alg="none"), a.claims()).rsplit(".", 1)[0] + "."), AUTH),
    ("token-alg-NONE-signed", bearer(lambda a: a.signed(a.header(alg="NONE"), a.claims())), AUTH),
    ("token-wrong-key", bearer(lambda a: a.signed(a.header(), a.claims(), key=b"k" * 32)), AUTH),
    ("token-wrong-alg-hs512", bearer(lambda a: a.signed(a.header(alg="HS512"), a.claims())), AUTH),
    ("token-wrong-alg-rs256", bearer(lambda a: a.signed(a.header(alg="RS256"), a.claims())), AUTH),
    ("token-kid-int", bearer(lambda a: a.signed(a.header(kid=1), a.claims())), AUTH),
    ("token-kid-list", bearer(lambda a: a.signed(a.header(kid=[a.keyring.current_kid]), a.claims())), AUTH),
    ("token-kid-null", bearer(lambda a: a.signed(a.header(kid=None), a.claims())), AUTH),
    ("token-kid-dict", bearer(lambda a: a.signed(a.header(kid={"$ne": ""}), a.claims())), AUTH),
    ("token-kid-huge", bearer(lambda a: a.signed(a.header(kid="k" * 20_000), a.claims())), AUTH),
    ("token-kid-traversal", bearer(lambda a: a.signed(a.header(kid="../../../../etc/passwd"), a.claims())), AUTH),
    ("token-kid-sql", bearer(lambda a: a.signed(a.header(kid="' OR '1'='1"), a.claims())), AUTH),
    ("token-header-not-json", bearer(lambda a: f"{b64(b'{not json')}.{a.token.split('.')[1]}.sig"), AUTH),
    ("token-claims-array", bearer(lambda a: a.signed(a.header(), a.claims()).split(".")[0]
                                  + f".{b64(b'[1,2,3]')}.sig"), AUTH),
    ("token-signed-no-sub", bearer(lambda a: a.signed(a.header(), {k: v for k, v in a.claims().items()
                                                                   if k != "sub"})), AUTH),
    ("token-signed-sub-int", bearer(lambda a: a.signed(a.header(), a.claims(sub=42))), AUTH),
    ("token-signed-cart-not-list", bearer(lambda a: a.signed(a.header(), a.claims(cart="all the books")),
                                          "GET", "/cart"), AUTH),
    ("token-signed-cart-bad-lines", bearer(lambda a: a.signed(a.header(), a.claims(cart=[1, {"item": None}])),
                                           "POST", "/cart", b'{"item": "book"}'), AUTH),
    ("token-signed-nbf-future", bearer(lambda a: a.signed(a.header(), a.claims(nbf=int(time.time()) + 3600))), AUTH),
    ("token-signed-exp-string", bearer(lambda a: a.signed(a.header(), a.claims(exp="tomorrow"))), AUTH),
    ("token-20k", bearer(lambda a: "e" * 20_000), AUTH),
    ("auth-8k-garbage", lambda a: http(headers=[("Authorization", "x" * 8192)]), AUTH),
    ("auth-twice", lambda a: http(headers=[("Authorization", "Bearer a.b.c"), ("Authorization", "Bearer x")]), AUTH),
    ("auth-latin1-bytes", lambda a: http(headers=[b"Authorization: Bearer \xff\xfe\xfd"]), AUTH),
    # --- cookies --------------------------------------------------------------------------
    ("cookie-sid-short", cookie("sid=x"), AUTH),
    ("cookie-sid-empty", cookie("sid="), AUTH),
    ("cookie-sid-300", cookie("sid=" + "A" * 300), AUTH),
    ("cookie-sid-sql", cookie("sid=' OR '1'='1"), AUTH),
    ("cookie-sid-victim-flipped",
     cookie(lambda a: f"{a.sid_name}=" + flip(a.victim.cookies.get(a.sid_name, "abcdefgh"))), AUTH),
    ("cookie-sid-nul", cookie("sid=%00%00"), AUTH),
    ("cookie-latin1-bytes", lambda a: http(headers=[b"Cookie: sid=\xff\xfe"]), AUTH),
    ("cookie-syntax-garbage", cookie(";;;===;; sid ; =;\"\"\"; sid==="), AUTH),
    ("cookie-500-cookies", cookie("; ".join(f"c{i}=v{i}" for i in range(500))), AUTH),
    ("cookie-60k", cookie("sid=" + "A" * 60_000), ANY_4XX),
    ("cookie-over-64k", cookie("sid=" + "A" * 70_000), {431}),
    ("cookie-balancer-garbage", cookie("statelab-lb=../../server-0; statelab-lb=" + "z" * 3000), AUTH),
    # --- the protocol itself --------------------------------------------------------------
    ("request-line-over-64k", raw(b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"), {414}),
    ("headers-200", raw(b"GET /me HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n"),
     {431}),
    ("header-line-over-64k", lambda a: http(headers=[("X-Big", "a" * 70_000)]), {431}),
    ("request-line-garbage", raw(b"GARBAGE\r\n\r\n"), {400}),
    ("request-line-four-words", raw(b"GET /me HTTP/1.1 extra\r\n\r\n"), {400}),
    ("version-not-http", raw(b"GET /me HTTPS/1.1\r\n\r\n"), {400}),
    ("version-letters", raw(b"GET /me HTTP/abc\r\n\r\n"), {400}),
    ("version-three-parts", raw(b"GET /me HTTP/1.1.1\r\n\r\n"), {400}),
    ("version-9.9", raw(b"GET /me HTTP/9.9\r\n\r\n"), {400}),
    ("content-length-letters", lambda a: http("POST", "/login", [("Content-Length", "abc")], b'{"user":"x"}'), {400}),
    ("content-length-negative", lambda a: http("POST", "/login", [("Content-Length", "-1")], b"{}"), {400}),
    ("content-length-float", lambda a: http("POST", "/login", [("Content-Length", "1e3")], b"{}"), {400}),
    ("content-length-twice", lambda a: http("POST", "/login", [("Content-Length", "2"), ("Content-Length", "9")],
                                            b"{}"), {400}),
    ("content-length-huge", lambda a: http("POST", "/login", [("Content-Length", "9" * 20)], b"{}"), TOO_BIG),
    ("content-length-too-long-for-body", lambda a: http("POST", "/login", [("Content-Length", "100")],
                                                        b'{"user": "mal'), {400}),
    ("chunked-garbage-size", lambda a: http("POST", "/login", [("Transfer-Encoding", "chunked")],
                                            b"zz\r\nhello\r\n0\r\n\r\n"), {400}),
    ("chunked-negative-size", lambda a: http("POST", "/login", [("Transfer-Encoding", "chunked")],
                                             b"-5\r\nhello\r\n0\r\n\r\n"), {400}),
    ("chunked-truncated", lambda a: http("POST", "/login", [("Transfer-Encoding", "chunked")],
                                         b"ff\r\n{\"user\""), {400}),
    ("chunked-and-content-length", lambda a: http("POST", "/login", [("Transfer-Encoding", "chunked"),
                                                                     ("Content-Length", "4")],
                                                  chunked(b'["x"]')), {400}),
    ("chunked-over-1mib", lambda a: http("POST", "/login", [("Transfer-Encoding", "chunked")],
                                         chunked(b'{"user": "' + b"a" * (MIB + 10) + b'"}')), TOO_BIG),
    ("chunked-over-1mib-cart", lambda a: http("POST", "/cart", [("Transfer-Encoding", "chunked"), *a.auth()],
                                              chunked(b" " * (2 * MIB))), TOO_BIG),
    ("header-without-colon", lambda a: http(headers=[b"ThisIsNotAHeader"]), ANY_4XX),
    ("header-with-nul", lambda a: http(headers=[b"X-Nul: a\x00b", b"Cookie: sid=a\x00b"]), ANY_4XX),
    ("header-name-with-space", lambda a: http(headers=[b"Bad Header: x"]), ANY_4XX),
    ("header-obs-fold", lambda a: http(headers=[b"Authorization: Bearer", b"  folded.continuation.line"]), AUTH),
    ("absolute-uri", raw(b"GET http://evil.example/me HTTP/1.1\r\nHost: evil.example\r\n\r\n"), ANY_4XX),
    ("connect-method", raw(b"CONNECT 169.254.169.254:80 HTTP/1.1\r\nHost: x\r\n\r\n"), ANY_4XX),
    ("expect-continue-bad-body", lambda a: http("POST", "/login", [("Expect", "100-continue")], b"nope"), {400}),
    # --- bodies ---------------------------------------------------------------------------
    ("body-not-json", login_body(b"hello"), {400}),
    ("body-broken-json", login_body(b'{"user": "alice"'), {400}),
    ("body-list", login_body(b'["alice"]'), {400}),
    ("body-string", login_body(b'"alice"'), {400}),
    ("body-number", login_body(b"42"), {400}),
    ("body-null", login_body(b"null"), {400}),
    ("body-empty", login_body(b""), {400}),
    ("body-deeply-nested", login_body(b"[" * 100_000 + b"]" * 100_000), {400}),
    ("body-deeply-nested-object", login_body(b'{"a":' * 50_000 + b"1" + b"}" * 50_000), {400}),
    ("body-user-nested", login_body(b'{"user": {"name": {"first": ["alice"]}}}'), {400}),
    ("body-user-huge", login_body(b'{"user": "' + b"a" * 100_000 + b'"}'), {400}),
    ("body-invalid-utf8", login_body(b'{"user": "\xff\xfe"}'), {400}),
    ("body-form-encoded", login_body(b"user=alice", [("Content-Type", "application/x-www-form-urlencoded")]), {415}),
    ("body-text-plain-json", login_body(b'{"user": "mallory"}', [("Content-Type", "text/plain")]), {415}),
    ("body-over-1mib", login_body(b'{"user": "' + b"a" * MIB + b'"}'), TOO_BIG),
    ("cart-body-list", cart_body(b'[{"item": "book", "qty": 1}]'), {400}),
    ("cart-body-string", cart_body(b'"book"'), {400}),
    ("cart-body-number", cart_body(b"7"), {400}),
    ("cart-body-nested", cart_body(b'{"item": {"$gt": ""}, "qty": {"n": [1]}}'), {400}),
    ("cart-qty-nan", cart_body(b'{"item": "book", "qty": NaN}'), {400}),
    ("cart-qty-infinity", cart_body(b'{"item": "book", "qty": Infinity}'), {400}),
    ("cart-qty-1e400", cart_body(b'{"item": "book", "qty": 1e400}'), {400}),
    ("cart-qty-5000-digits", cart_body(b'{"item": "book", "qty": ' + b"9" * 5000 + b"}"), {400}),
    ("cart-qty-negative", cart_body(b'{"item": "book", "qty": -99}'), {400}),
    ("cart-item-huge", cart_body(b'{"item": "' + b"b" * 100_000 + b'", "qty": 1}'), {400}),
    ("cart-item-html", cart_body(b'{"item": "<img src=x onerror=alert(1)>", "qty": 1}'), {400}),
    ("cart-body-over-1mib", cart_body(b'{"item": "book", "pad": "' + b" " * MIB + b'"}'), TOO_BIG),
    # --- methods and paths ----------------------------------------------------------------
    ("method-put-cart", lambda a: http("PUT", "/cart", a.auth(), b'{"item": "book"}'), {405}),
    ("method-delete-me", lambda a: http("DELETE", "/me", a.auth()), {405}),
    ("method-patch-login", lambda a: http("PATCH", "/login", [], b'{"user": "x"}'), {405}),
    ("method-made-up", lambda a: http("BREW", "/cart", a.auth()), {405}),
    ("method-trace", lambda a: http("TRACE", "/me", a.auth()), {405}),
    ("method-weird-chars", raw(b"G\x01T /me HTTP/1.1\r\nHost: x\r\n\r\n"), ANY_4XX),
    ("path-very-long", lambda a: http("GET", "/" + "a" * 60_000), {404}),
    ("path-encoded-traversal", lambda a: http("GET", "/%2e%2e/%2e%2e/etc/passwd"), {404}),
    ("path-raw-traversal", lambda a: http("GET", "/../../etc/passwd"), {404}),
    ("path-backslash-traversal", lambda a: http("GET", "/..\\..\\windows\\win.ini"), {404}),
    ("path-encoded-nul", lambda a: http("GET", "/me%00"), {404}),
    ("path-raw-nul", raw(b"GET /me\x00.json HTTP/1.1\r\nHost: x\r\n\r\n"), {404}),
    ("path-double-slash", lambda a: http("GET", "//me"), {401, 404}),
    ("path-dot-segments", lambda a: http("GET", "/cart/../me"), {404}),
    ("path-uppercase", lambda a: http("GET", "/ME"), {404}),
    ("path-utf8", raw("GET /ünïcødé HTTP/1.1\r\nHost: x\r\n\r\n".encode()), {404}),
    ("path-asterisk", raw(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n"), ANY_4XX),
    ("path-garbage-query", lambda a: http("GET", "/me?%%%%&&==;;%zz"), AUTH),
    ("post-health", lambda a: http("POST", "/health", [], b"{}"), {405}),
    ("get-login", lambda a: http("GET", "/login"), {405}),
]


def test_there_are_enough_cases():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)  # unique ids


def check_answer(answer: Answer, expected: set[int] | None, arena: Arena) -> None:
    assert 400 <= answer.status < 500, (answer.status, answer.body[:300])
    if expected:
        assert answer.status in expected, (answer.status, answer.body[:300])
    assert answer.headers.get("content-type", "").startswith("application/json"), answer.headers
    body = answer.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    assert "Traceback" not in body["error"] and len(body["error"]) < 400
    names = {s.name for s in arena.owner.servers} if isinstance(arena.owner, sl.Cluster) else {arena.owner.name}
    assert answer.headers.get("x-served-by") in names | {"balancer"}, answer.headers


def check_still_fine(arena: Arena) -> None:
    assert arena.victim.health().status == 200
    me = arena.victim.me()
    assert me.status == 200 and me.body == {"user": "victim"}, me.summary()
    assert arena.victim.cart().body == {"cart": arena.victim_cart}


@pytest.mark.parametrize("name,build,expected", CASES, ids=[c[0] for c in CASES])
def test_hostile_request_gets_a_json_4xx_and_hurts_no_one(arena, name, build, expected):
    answer = exchange(arena.port, build(arena))
    check_answer(answer, expected, arena)
    check_still_fine(arena)


def test_the_attackers_own_session_still_works_after_the_barrage(arena):
    # the barrage used the attacker's credentials too: they were never damaged, only refused
    assert arena.attacker.me().body == {"user": "mallory"}
    assert arena.attacker.add_to_cart("book").status == 200


# --------------------------------------------------------------------------- slow and silent clients

DEADLINE = 0.5  # the servers below read with short deadlines; the defaults work the same way, only longer


@pytest.fixture(params=["server", "balancer"])
def impatient(request):
    """A stateful server (or a balancer in front of one) whose read deadlines are DEADLINE seconds."""
    server = sl.Server("stateful", store=sl.MemoryStore())
    server.header_timeout = server.body_timeout = DEADLINE
    with server:
        server.start()
        if request.param == "server":
            yield server, server
            return
        balancer = sl.LoadBalancer([server], start=False)
        balancer.header_timeout = balancer.body_timeout = DEADLINE
        with balancer:
            balancer.start()
            yield balancer, server


def until_closed(conn: socket.socket, drip: bytes = b"", every: float = 0.05) -> tuple[bytes, float]:
    """Read (sending ``drip`` every ``every`` seconds meanwhile) until the server closes; (answer, seconds)."""
    start = time.monotonic()
    conn.settimeout(every)
    got = b""
    while time.monotonic() - start < 10:
        try:
            if drip:
                conn.sendall(drip)
            chunk = conn.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
        if not chunk:
            break
        got += chunk
    return got, time.monotonic() - start


def test_the_default_read_deadlines_are_bounded_and_sane():
    for service in (sl.Server("stateful"), sl.LoadBalancer([], start=False)):
        assert 5 <= service.header_timeout <= 60 and 5 <= service.body_timeout <= 60


@pytest.mark.parametrize("case", ["silent", "headers one byte at a time", "body never finished"])
def test_a_slow_or_silent_client_is_cut_at_its_deadline(impatient, case):
    front, server = impatient
    with socket.create_connection(("127.0.0.1", front.port), timeout=5) as conn:
        if case == "silent":
            got, seconds = until_closed(conn)
        elif case == "headers one byte at a time":
            conn.sendall(b"GET /me HTTP/1.1\r\n")
            got, seconds = until_closed(conn, drip=b"X")  # a header that never ends
        else:
            conn.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 16\r\n\r\n{\"user\"")
            got, seconds = until_closed(conn)
    assert seconds < DEADLINE + 1.5, f"{case}: the connection was held {seconds:.1f} s"
    assert got.startswith(b"HTTP/1.1 408 "), f"{case}: {got[:120]!r}"
    head, _, body = got.partition(b"\r\n\r\n")
    assert b"application/json" in head and "within" in json.loads(body)["error"], got
    assert server.store.count() == 0  # the unfinished login created nothing
    assert sl.Client(front.url).health().status == 200


def test_a_client_that_pauses_within_the_deadline_is_answered(impatient):
    front, server = impatient
    with socket.create_connection(("127.0.0.1", front.port), timeout=5) as conn:
        conn.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        time.sleep(DEADLINE / 4)
        conn.sendall(b"Content-Length: 16\r\n\r\n{\"user\"")
        time.sleep(DEADLINE / 4)
        conn.sendall(b':"alice"}')
        got, _ = until_closed(conn)
    assert got.startswith(b"HTTP/1.1 200 "), got[:200]
    assert server.store.count() == 1
