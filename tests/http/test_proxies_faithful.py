"""The balancer and the cache stay faithful, and say so in JSON, when what is behind them misbehaves (issue 17).

A fake backend here is a raw socket server on 127.0.0.1 that answers bytes we choose: a malformed, cut, interim,
oversized or huge answer. Each must become a JSON 502 from both proxies (never an HTML 500, a lost answer or a
traceback), without marking a server that is still up as down. The same module checks the other findings of
the issue that live in the HTTP service: a killed server's port cannot be squatted (by another Unix user, as on
a shared machine), the sticky cookie is per balancer, a keyed write is re-sent only to a server that honours
the key, non-ASCII paths are forwarded as sent, blank lines before a request, the 431 of a cookie bomb, and
X-Forwarded-* headers from another user.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import shutil
import socket
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest
import requests

import statelab as sl
from statelab.experiments.fault_tolerance import write_through_crash
from statelab.service import Listener
from statelab.shop.plugins import IdempotencyKeys, InFlight, idempotent_writes, slow_writes
from statelab.topology.cache import SharedCache

MIB = 1024 * 1024


class FakeBackend:
    """A 'server' on 127.0.0.1 that answers every request with ``answer`` (bytes, or a function of the request
    head returning bytes or an iterable of bytes), then closes. Keeps the request heads it received."""

    def __init__(self, answer, name: str = "fake") -> None:
        self.answer, self.name = answer, name
        self.heads: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self._serve, name="test-fake-backend", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                    data += chunk
                if not data:
                    return  # a connection that asked nothing (the balancer checking we are up)
                self.heads.append(data.split(b"\r\n\r\n")[0])
                answer = self.answer(data) if callable(self.answer) else self.answer
                for piece in [answer] if isinstance(answer, bytes) else answer:
                    conn.sendall(piece)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> FakeBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def head(status: str = "200 OK", *lines: str) -> bytes:
    return ("\r\n".join([f"HTTP/1.1 {status}", *lines, "Connection: close"]) + "\r\n\r\n").encode()


OK_JSON = head("200 OK", "Content-Type: application/json", "Content-Length: 11") + b'{"ok":true}'

BROKEN = {
    "content-length-20-digits": head("200 OK", "Content-Length: 99999999999999999999") + b"{}",
    "content-length-not-a-number": head("200 OK", "Content-Length: 12abc") + b"{}",
    "content-length-twice-differing": head("200 OK", "Content-Length: 2", "Content-Length: 3") + b"{}",
    "bad-status-line": b"HTTP/1.1 two hundred OK\r\nContent-Length: 2\r\n\r\n{}",
    "not-http-at-all": b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    "over-100-headers": head("200 OK", *(f"X-H{i}: v" for i in range(120)), "Content-Length: 2") + b"{}",
    "70kb-header": head("200 OK", "X-Big: " + "a" * 70_000, "Content-Length: 2") + b"{}",
    "cut-body": head("200 OK", "Content-Length: 100") + b'{"cut":',
    "empty-reply": b"",
    "status-999": head("999 Whatever", "Content-Length: 2") + b"{}",
    "status-600": head("600 Nope", "Content-Length: 2") + b"{}",
    "101-without-upgrade": head("101 Switching Protocols"),
    "bad-chunk-size": head("200 OK", "Transfer-Encoding: chunked") + b"zz\r\nhello\r\n0\r\n\r\n",
    "cut-chunked-body": head("200 OK", "Transfer-Encoding: chunked") + b"10\r\nonly-part",
    "folded-header": head("200 OK", "Content-Type: application/json", "X-Folded: a\r\n b", "Content-Length: 2")
    + b"{}",
}


BROKEN_BODY_ONLY = {"cut-body", "bad-chunk-size", "cut-chunked-body"}  # a HEAD answer has no body: fine for HEAD


def proxy_for(kind: str, backend: FakeBackend):
    return sl.LoadBalancer([backend]) if kind == "balancer" else SharedCache(backend.url)


@pytest.mark.parametrize("kind", ["balancer", "cache"])
@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_answer_is_a_json_502_and_a_live_server_stays_up(kind, case, capfd, caplog):
    with FakeBackend(BROKEN[case]) as backend, proxy_for(kind, backend) as proxy:
        for method in ("GET", "HEAD"):
            answer = requests.request(method, proxy.url + "/catalog", timeout=10)
            if method == "HEAD" and case in BROKEN_BODY_ONLY:
                assert (answer.status_code, answer.content) == (200, b"")
                continue
            assert answer.status_code == 502, (method, answer.status_code, answer.content[:200])
            assert answer.headers["Content-Type"] == "application/json"
            if method == "GET":
                assert answer.json()["error"], answer.content
        if kind == "balancer":  # one bad answer from a server that still listens must not mark it down
            assert backend.name not in proxy.down
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err[-2000:]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[-2000:]


@pytest.mark.parametrize("kind", ["balancer", "cache"])
def test_an_interim_answer_is_skipped_and_the_final_one_relayed(kind):
    early = head("103 Early Hints", "Link: </style.css>; rel=preload")
    with FakeBackend(early + head("100 Continue") + early + OK_JSON) as backend, proxy_for(kind, backend) as proxy:
        answer = requests.get(proxy.url + "/catalog", timeout=10)
    assert (answer.status_code, answer.json()) == (200, {"ok": True})


def test_a_101_says_upgrades_are_not_supported():
    with FakeBackend(head("101 Switching Protocols", "Upgrade: websocket")) as backend, \
            sl.LoadBalancer([backend]) as lb:
        answer = requests.get(lb.url + "/", timeout=10)
    assert answer.status_code == 502 and "upgrade" in answer.json()["error"].lower()


def test_a_refused_connection_still_marks_a_server_down(cluster):
    c = cluster(2, mode="stateless")
    c.kill(1)
    answers = [sl.Client(c.url).health() for _ in range(4)]
    assert {a.served_by for a in answers} == {"server-0"} and "server-1" in c.balancer.down


# --------------------------------------------------------------------------- R4: non-ASCII targets

@pytest.mark.parametrize("kind", ["balancer", "cache"])
def test_a_non_ascii_target_is_forwarded_as_the_client_sent_it(kind):
    with FakeBackend(OK_JSON) as backend, proxy_for(kind, backend) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(b"GET /caf\xc3\xa9/%2Fx?q=\xc3\xa9&r=%C3%A9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        request_line = backend.heads[0].split(b"\r\n")[0]
    # the same bytes: beyond ASCII percent-encoded once (http.client sends ASCII only), escapes untouched
    assert request_line == b"GET /caf%C3%A9/%2Fx?q=%C3%A9&r=%C3%A9 HTTP/1.1"


# --------------------------------------------------------------------------- R7: large answers stream

def huge(size: int, cut_at: int | None = None):
    def answer(_head: bytes):
        yield head("200 OK", "Content-Type: application/octet-stream", f"Content-Length: {size}")
        piece = b"x" * MIB
        for sent in range(0, cut_at if cut_at is not None else size, MIB):
            yield piece[: min(MIB, size - sent)]

    return answer


def read_all(port: int) -> tuple[bytes, int]:
    """GET / through the proxy, discarding the body as it comes: (head, body bytes received)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data and (chunk := s.recv(65536)):
            data += chunk
        answer_head, _, body = data.partition(b"\r\n\r\n")
        received = len(body)
        while chunk := s.recv(1 << 20):
            received += len(chunk)
    return answer_head, received


@pytest.mark.parametrize("kind", ["balancer", "cache"])
def test_a_large_answer_streams_through_in_bounded_memory(kind):
    size = 48 * MIB
    with FakeBackend(huge(size)) as backend, proxy_for(kind, backend) as proxy:
        tracemalloc.start()
        try:
            answer_head, received = read_all(proxy.port)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert answer_head.startswith(b"HTTP/1.1 200") and received == size
    assert peak < 8 * MIB, f"relaying {size // MIB} MiB took {peak / MIB:.0f} MiB at its peak"
    if kind == "cache":
        assert proxy.entries == {}  # too large to keep


@pytest.mark.parametrize("kind", ["balancer", "cache"])
def test_a_large_answer_cut_midway_cuts_the_client_too(kind):
    size = 8 * MIB
    with FakeBackend(huge(size, cut_at=3 * MIB)) as backend, proxy_for(kind, backend) as proxy:
        answer_head, received = read_all(proxy.port)
    assert answer_head.startswith(b"HTTP/1.1 200") and f"Content-Length: {size}".encode() in answer_head
    assert received < size  # the client can tell: a short body, not one that looks complete


# --------------------------------------------------------------------------- M1: no squatting

ATTACKER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen()
except OSError as e:
    print("refused", e.errno)
    sys.exit(0)
print("squatted")
s.settimeout(3)
try:
    conn, _ = s.accept()
    print("received", conn.recv(65536)[:300])
except OSError:
    pass
"""


def as_nobody(script: str, *args: str, timeout: float = 15) -> subprocess.Popen:
    """Run ``script`` as the user ``nobody`` (another learner on a shared machine); skip if this cannot be done."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("acting as another local user needs root and setpriv (util-linux)")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("there is no user 'nobody' on this machine")
    return subprocess.Popen(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable,
                             "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd="/")


@pytest.mark.skipif(not Listener.KEEPS_PORT, reason="only Linux keeps a port bound once its socket stops listening")
def test_another_user_cannot_squat_a_killed_servers_port(cluster):
    c = cluster(2, mode="stateless")
    alice = sl.Client(c.url)
    assert alice.login("alice").ok
    port = c.servers[1].port
    c.kill(1)
    attacker = as_nobody(ATTACKER, str(port))
    time.sleep(0.3)  # give the attacker its chance, while alice keeps shopping
    answers = [alice.cart() for _ in range(6)]
    out, err = attacker.communicate(timeout=15)
    assert out.startswith("refused 98"), (out, err)  # EADDRINUSE: the port is still ours
    assert all(a.ok and a.served_by == "server-0" for a in answers), [a.summary() for a in answers]
    c.restart(1)
    assert c.servers[1].port == port
    assert {alice.cart().served_by for _ in range(4)} == {"server-0", "server-1"}


def test_a_kill_still_fails_fast(cluster):
    c = cluster(2, mode="stateless")
    port = c.servers[0].port
    c.kill(0)
    started = time.perf_counter()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    assert time.perf_counter() - started < 0.5


# --------------------------------------------------------------------------- L1: one sticky cookie per balancer

def test_one_clusters_re_pin_does_not_move_another_clusters_users(cluster):
    a = cluster(2, mode="stateful", store="memory", balancer="sticky")
    b = cluster(2, mode="stateless", balancer="sticky")
    browser = requests.Session()  # one cookie jar for every port of 127.0.0.1, as a browser has
    login = browser.post(a.url + "/login", json={"user": "alice"}, timeout=5)
    pinned = login.headers["X-Served-By"]
    assert browser.get(b.url + "/health", timeout=5).ok
    b.kill(pinned)  # B's server of the same name dies: B re-pins its user to the other one
    assert browser.get(b.url + "/health", timeout=5).headers["X-Served-By"] != pinned
    me = browser.get(a.url + "/me", timeout=5)
    assert (me.status_code, me.headers["X-Served-By"]) == (200, pinned)  # A's user stays where the session is
    assert a.balancer.cookie_name != b.balancer.cookie_name
    assert {a.balancer.cookie_name, b.balancer.cookie_name} <= set(browser.cookies.keys())


# --------------------------------------------------------------------------- L4: keyed writes re-sent only if honoured

def test_a_keyed_write_cut_by_a_crash_is_not_re_sent_to_servers_that_ignore_keys(cluster):
    watch = InFlight()
    c = cluster(2, mode="stateless", cart="db", plugins=[slow_writes(0.3), watch])
    erin = sl.Client(c.url)
    erin.login("erin")
    keyed = write_through_crash(c, erin, watch, item="ink", key="erin-ink-1")
    assert keyed.status == 502 and "Idempotency-Key" in keyed.body["error"]
    assert erin.cart().body["cart"] == [{"item": "ink", "qty": 1}]  # acted on once, by the crashed server
    assert not c.servers[0].honours_idempotency_key("/cart")


def test_a_keyed_write_cut_by_a_crash_is_re_sent_where_keys_are_honoured(cluster):
    watch = InFlight()
    c = cluster(2, mode="stateless", cart="db", plugins=[slow_writes(0.3), watch, idempotent_writes(IdempotencyKeys())])
    assert c.servers[0].honours_idempotency_key("/cart") and not c.servers[0].honours_idempotency_key("/login")
    erin = sl.Client(c.url)
    erin.login("erin")
    keyed = write_through_crash(c, erin, watch, item="ink", key="erin-ink-2")
    assert keyed.ok and erin.cart().body["cart"] == [{"item": "ink", "qty": 1}]


# --------------------------------------------------------------------------- R8: blank lines before a request

def raw(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    return reply


@pytest.mark.parametrize("where", ["server", "balancer"])
def test_an_empty_line_before_the_request_line_is_ignored(cluster, where):
    c = cluster(1, mode="stateless")
    port = c.servers[0].port if where == "server" else c.balancer.port
    for lead in (b"\r\n", b"\r\n\r\n", b"\n"):
        reply = raw(port, lead + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 200"), (lead, reply[:100])
    reply = raw(port, b"\r\n" * 20)
    answer_head, _, body = reply.partition(b"\r\n\r\n")
    assert answer_head.split()[1] == b"400" and b"application/json" in answer_head, reply[:300]
    assert "request line" in json.loads(body)["error"]


# --------------------------------------------------------------------------- L2: the cookie bomb

@pytest.mark.parametrize("where", ["server", "balancer"])
def test_a_cookie_bomb_gets_a_json_431_that_says_why(cluster, where):
    c = cluster(1, mode="stateful")
    port = c.servers[0].port if where == "server" else c.balancer.port
    bomb = "; ".join(f"bomb{i}={'x' * 4000}" for i in range(20))  # what a page on another port can set
    reply = raw(port, f"GET /me HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {bomb}\r\n\r\n".encode())
    answer_head, _, body = reply.partition(b"\r\n\r\n")
    assert answer_head.split(b"\r\n")[0].split()[1] == b"431" and b"application/json" in answer_head
    error = json.loads(body)["error"]
    assert "cookies" in error and "127.0.0.1" in error and "another port" in error.replace("any port", "another port")
    assert "Clear" in error


# --------------------------------------------------------------------------- X-Forwarded-* from another user

SENDER = """
import socket, sys
port, prefix, host = int(sys.argv[1]), sys.argv[2], sys.argv[3]
body = b'{"user": "mallory"}'
request = (f"POST /login HTTP/1.1\\r\\nHost: 127.0.0.1:{port}\\r\\nContent-Type: application/json\\r\\n"
           f"Content-Length: {len(body)}\\r\\nOrigin: http://{host}\\r\\nX-Forwarded-Host: {host}\\r\\n"
           f"X-Forwarded-Prefix: {prefix}\\r\\nConnection: close\\r\\n\\r\\n").encode() + body
with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
    s.sendall(request)
    reply = b""
    while chunk := s.recv(65536):
        reply += chunk
print(reply.split(b"\\r\\n\\r\\n")[0].decode("latin-1"))
"""


def login_as(port: int, nobody: bool) -> str:
    args = (str(port), "/user/x/proxy/1/", "evil.example:80")
    if nobody:
        out, err = as_nobody(SENDER, *args).communicate(timeout=15)
    else:
        done = subprocess.run([sys.executable, "-c", SENDER, *args], capture_output=True, text=True, timeout=15)
        out, err = done.stdout, done.stderr
    assert out.startswith("HTTP/1.1"), err
    return out


@pytest.mark.parametrize("where", ["server", "balancer"])
def test_forwarding_headers_count_only_from_a_process_of_this_user(cluster, where):
    c = cluster(1, mode="stateful")
    port = c.servers[0].port if where == "server" else c.balancer.port
    own = login_as(port, nobody=False)  # you (or your Jupyter server's proxy) may say how the browser came
    assert own.startswith("HTTP/1.1 200") and "Path=/user/x/proxy/1/" in own, own
    other = login_as(port, nobody=True)  # another user of the machine may not
    assert other.startswith("HTTP/1.1 403"), other


def test_gunicorn_workers_count_forwarding_headers_only_from_a_process_of_this_user():
    """The same rule under gunicorn (notebook 13, lab 06): its port on 127.0.0.1 is open to every user too."""
    from statelab.production import Gunicorn
    from statelab.production import gunicorn as gunicorn_module

    if not gunicorn_module.available():
        pytest.skip(gunicorn_module.HOW_TO_GET)
    shop = Gunicorn(1, "stateful")
    try:
        own = login_as(shop.port, nobody=False)
        assert own.startswith("HTTP/1.1 200") and "Path=/user/x/proxy/1/" in own, own
        other = login_as(shop.port, nobody=True)
        assert other.startswith("HTTP/1.1 403"), other
    finally:
        shop.stop()
