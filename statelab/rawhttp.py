"""HTTP/1.1 as raw bytes: the one place statelab writes a request and reads an answer by hand.

Most of statelab speaks HTTP through a library (``requests`` in :class:`~statelab.Client`,
``http.client`` in the balancer). Some measurements need the bytes themselves: the load
generator builds one request and sends it thousands of times (a client that does no work per
request measures the server, not itself), and the performance lesson counts every byte the
socket carried. Both use :func:`build_request` and :func:`wire_exchange`; :class:`WireUser` is a
logged-in user on top of them (the session cookie or the token it was given, sent back each time).

It also holds the HTTP limits and rules every server and proxy here shares: :data:`MAX_BODY`,
the :data:`HOP_BY_HOP` headers a proxy does not relay, and :func:`request_target` (the path a
proxy forwards, exactly as the client sent it).

Standard library only, and no relative imports: the load generator's child process imports this
file on its own, without statelab's dependencies, to start fast.
"""

from __future__ import annotations

import json as jsonlib
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

MAX_BODY = 1024 * 1024  # largest request body any statelab server or proxy reads

#: Headers that describe one connection, not the message (RFC 9110 7.6.1): a proxy never relays them.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "proxy-connection", "te", "trailer", "trailers", "transfer-encoding", "upgrade"})

# What may stand in a request target as it is (RFC 3986 pchar, "/", "?" and "%" for escapes already there):
_TARGET_SAFE = "/?&=%:@!$'()*+,;~-._"


# --------------------------------------------------------------------------- requests

def build_request(method: str, host: str, port: int, path: str, headers: dict[str, str] | None = None,
                  body: Any = None) -> bytes:
    """The exact bytes of a minimal HTTP/1.1 request (what a lean client puts on the wire).

    ``body`` is sent as JSON, with ``Content-Type: application/json`` (statelab's servers refuse a
    state-changing body of any other type) unless ``headers`` names another type; ``bytes`` are sent
    as they are. The connection closes after the answer.
    """
    given = {k.lower() for k in (headers or {})}
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    payload = b""
    if body is not None:
        payload = body if isinstance(body, bytes) else jsonlib.dumps(body).encode()
        if not isinstance(body, bytes) and "content-type" not in given:
            lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(payload)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


# --------------------------------------------------------------------------- answers

@dataclass
class WireExchange:
    """One HTTP exchange as raw bytes: what the socket sent and received, and how long it took."""

    status: int
    request_bytes: int
    response_bytes: int
    response_header_bytes: int
    headers: dict[str, str] = field(default_factory=dict)  # Title-Case names; repeats joined with ", "
    body: bytes = b""
    ms: float = 0.0

    @property
    def total_bytes(self) -> int:
        return self.request_bytes + self.response_bytes

    def json(self) -> Any:
        return jsonlib.loads(self.body)


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """The status and the headers of an answer's head (the bytes before the blank line)."""
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ConnectionError(f"not an HTTP answer: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        key = name.strip().title()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    return int(parts[1]), headers


def _address(url: str | tuple[str, int]) -> tuple[str, int]:
    if isinstance(url, tuple):
        return url
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def wire_exchange(url: str | tuple[str, int], raw_request: bytes, timeout: float = 10.0) -> WireExchange:
    """Send ``raw_request`` to ``url`` (or a (host, port) pair) on a fresh socket; read one whole answer.

    Counting bytes here, not from a library's view of the headers, is the honest count: these are
    the bytes the network carried. The answer ends where its ``Content-Length`` says (as for any HTTP
    client, and as wrk reads); the clock stops there, not at the server's close, which werkzeug delays
    by about 10 ms while it drains the socket. Raises :class:`ConnectionError` when the server closes
    before a whole answer.
    """
    no_body = raw_request.startswith(b"HEAD ")
    start = time.perf_counter()
    with socket.create_connection(_address(url), timeout=timeout) as sock:
        sock.sendall(raw_request)
        raw, end, length = b"", -1, None
        while True:
            chunk = sock.recv(65536)
            raw += chunk
            if end < 0 and (end := raw.find(b"\r\n\r\n")) >= 0:
                status, headers = parse_head(raw[:end])
                if no_body or status in (204, 304) or status < 200:
                    length = 0
                elif "Content-Length" in headers:
                    length = int(headers["Content-Length"])
            if not chunk or (length is not None and len(raw) >= end + 4 + length):
                break
    ms = (time.perf_counter() - start) * 1000
    if end < 0:
        raise ConnectionError(f"{url} closed the connection before a whole HTTP answer")
    if length is not None and len(raw) < end + 4 + length:
        raise ConnectionError(f"{url} closed the connection in the middle of the answer's body")
    return WireExchange(status=status, request_bytes=len(raw_request), response_bytes=len(raw),
                        response_header_bytes=end + 4, headers=headers, body=raw[end + 4:], ms=ms)


class WireUser:
    """One user talking raw HTTP to one server, every byte counted: keeps the session cookie or the token.

    It holds what the server hands out, as a browser or an app would: the cookie of a ``Set-Cookie``
    (the session id, or the signed cookie that carries the cart), else the ``token`` of a JSON
    answer, and sends it back with every request. An answer of 400 or more raises ``RuntimeError``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.host, self.port = _address(url)
        self.cookie: tuple[str, str] | None = None  # (name, value) of the session cookie
        self.token: str | None = None

    @property
    def credential(self) -> tuple[str, str]:
        """(cookie name, value) of what identifies this user, as a browser would keep it (a token: "token")."""
        return self.cookie if self.cookie is not None else ("token", self.token or "")

    def identity(self) -> dict[str, str]:
        """The headers that tell the server who is asking (none before a login)."""
        headers = {"Cookie": "=".join(self.cookie)} if self.cookie else {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def send(self, method: str, path: str, body: Any = None) -> WireExchange:
        ex = wire_exchange(self.url, build_request(method, self.host, self.port, path, self.identity(), body))
        if ex.status >= 400:
            raise RuntimeError(f"{method} {path} answered {ex.status}: {ex.body[:200]!r}")
        name, _, value = ex.headers.get("Set-Cookie", "").split(";", 1)[0].partition("=")
        if name and value:
            self.cookie = (name.strip(), value.strip())
        elif ex.headers.get("Content-Type", "").startswith("application/json"):
            token = ex.json().get("token")
            if isinstance(token, str):
                self.token = token
        return ex

    def login(self, user: str) -> WireExchange:
        return self.send("POST", "/login", {"user": user})

    def add(self, item: str, qty: int = 1) -> WireExchange:
        return self.send("POST", "/cart", {"item": item, "qty": qty})


# --------------------------------------------------------------------------- proxies

def request_target(raw_uri: str | None, path: str, query: bytes | str = b"") -> str:
    """The path and query a proxy forwards: as the client sent them, never decoded and encoded again.

    ``raw_uri`` is the target from the request line (werkzeug's ``RAW_URI``). Decoding it and quoting it
    again would turn an escaped ``%3F`` into a real ``?`` (another path, another answer). Only what
    ``http.client`` cannot send (spaces, control characters, bytes beyond ASCII) is escaped. Without a
    raw target starting with ``/`` (an absolute URI, ``*``), the decoded ``path`` and ``query`` are used.
    """
    if raw_uri and raw_uri.startswith("/") and not raw_uri.startswith("//"):
        return quote(raw_uri, safe=_TARGET_SAFE, encoding="latin-1")  # latin-1: the request line's bytes
    query = query.decode("latin-1") if isinstance(query, bytes) else query
    target = quote(path, safe="/:@!$'()*+,;~-._=&", encoding="utf-8")
    return f"{target}?{quote(query, safe=_TARGET_SAFE, encoding='latin-1')}" if query else target


def end_to_end(headers: Any, *, drop: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The headers a proxy relays: all but hop-by-hop ones, those the ``Connection`` header names, and ``drop``."""
    items = list(headers.items() if hasattr(headers, "items") else headers)
    named = {t.strip().lower() for k, v in items if k.lower() == "connection" for t in v.split(",")}
    skip = HOP_BY_HOP | named | {d.lower() for d in drop}
    return [(k, v) for k, v in items if k.lower() not in skip]
