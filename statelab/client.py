"""Client: the learner's browser, as a Python object with a memory of every exchange.

It keeps cookies like a browser and, in stateless mode, the token like a single-page app
(picked up from any JSON answer that carries one, sent back as ``Authorization: Bearer``).
It never raises for an HTTP error or a dead server: failures are data in the
:class:`Exchange` (``status=401``, or ``error="connection refused"`` with ``status=None``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import requests

from . import trace
from .shop.tokens import TokenReport, inspect_token


@dataclass
class Exchange:
    """One request and its answer, as the client saw it."""

    method: str
    path: str
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    served_by: str | None = None
    ms: float = 0.0
    error: str | None = None
    sent: dict[str, str] = field(default_factory=dict)  # request headers that carry identity
    at: float = field(default_factory=time.time)
    trace_id: str | None = None  # set when the request was traced (Client(..., traced=True))

    @property
    def trace(self) -> trace.Trace | None:
        """Every hop this exchange took (client, cache, balancer, server, store), or None when not traced."""
        return trace.Trace(self.trace_id, trace.RECORDER.hops(self.trace_id)) if self.trace_id else None

    @property
    def ok(self) -> bool:
        """True for a 2xx/3xx answer; False for an error status or no answer at all."""
        return self.status is not None and self.status < 400

    @property
    def set_cookie(self) -> str | None:
        """The raw ``Set-Cookie`` header of the answer, attributes and all."""
        return self.headers.get("Set-Cookie")

    def summary(self) -> str:
        outcome = f"{self.status}" if self.status is not None else f"failed: {self.error}"
        by = f" by {self.served_by}" if self.served_by else ""
        detail = self.body.get("error") if isinstance(self.body, dict) else None
        detail = f" ({detail})" if detail else ""
        return f"{self.method} {self.path} -> {outcome}{detail}{by} in {self.ms:.1f} ms"

    def __repr__(self) -> str:
        return f"<Exchange {self.summary()}>"


def _describe(error: Exception) -> str:
    text = str(error).lower()
    if isinstance(error, requests.Timeout):
        return "timed out"
    if "refused" in text:
        return "connection refused"
    if "reset" in text or "aborted" in text or "remotedisconnected" in text or "closed connection" in text:
        return "connection cut by the server"
    return f"connection failed ({type(error).__name__})"


class Client:
    """One user's browser talking to ``url`` (a server's or a cluster's balancer).

    ``ip`` pretends the user connects from that address (sent as ``X-Forwarded-For``),
    which the ``ip_hash`` balancer uses to pick a server. ``traced=True`` (or ``client.traced = True``) sends
    each request with a fresh trace id, so every hop it takes is recorded: ``exchange.trace``,
    ``sl.ui.trace(client)`` (see :mod:`statelab.trace`).
    """

    def __init__(self, url: str, *, ip: str | None = None, timeout: float = 10.0, keep: int = 1000,
                 traced: bool = False) -> None:
        self.url = url.rstrip("/")
        self.ip = ip
        self.traced = traced
        self.timeout = timeout
        self.token: str | None = None
        self.history: list[Exchange] = []
        self._keep = keep
        #: Called with each new Exchange after it is recorded (a dashboard listens, to keep its view current).
        self.listeners: list[Any] = []
        self._http = requests.Session()
        self._http.trust_env = False  # loopback only: never route through a proxy from the environment

    # --- what the browser holds -----------------------------------------------------------
    @property
    def cookies(self) -> dict[str, str]:
        """Cookies the browser holds right now, name -> value."""
        return {c.name: c.value or "" for c in self._http.cookies}

    def cookie_details(self) -> list[dict[str, Any]]:
        """Each cookie with its attributes, as a browser's developer tools would list them."""
        out = []
        for c in self._http.cookies:
            rest = {k.lower(): v for k, v in getattr(c, "_rest", {}).items()}
            out.append({"name": c.name, "value": c.value, "path": c.path, "domain": c.domain,
                        "httponly": "httponly" in rest, "samesite": rest.get("samesite"),
                        "secure": bool(c.secure), "expires": c.expires})
        return out

    def inspect_token(self, key: Any = None) -> TokenReport:
        """Decode the token this client holds (see :func:`statelab.inspect_token`)."""
        return inspect_token(self.token, key)

    def set_cookie(self, name: str, value: str) -> None:
        """Put a cookie in this browser by hand (how an attacker plants a session id)."""
        host = self.url.split("//", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
        self._http.cookies.set(name, value, domain=host, path="/")

    def forget(self) -> None:
        """Clear cookies and token, as closing a private window would."""
        self._http.cookies.clear()
        self.token = None

    # --- requests -------------------------------------------------------------------------
    def request(self, method: str, path: str, json: Any = None, headers: dict[str, str] | None = None,
                data: bytes | str | None = None) -> Exchange:
        """Send one request and record it. Never raises for HTTP or connection failures."""
        sent: dict[str, str] = {}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        if self.ip:
            sent["X-Forwarded-For"] = self.ip
        sent.update(headers or {})
        if self.traced and trace.HEADER not in sent:
            sent[trace.HEADER] = trace.new_id()
        ex = Exchange(method.upper(), path, sent=dict(sent), trace_id=trace.valid(sent.get(trace.HEADER)))
        if self._http.cookies:
            ex.sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        start = time.perf_counter()
        try:
            r = self._http.request(method, self.url + path, json=json, data=data, headers=sent,
                                   timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as e:
            ex.error = _describe(e)
        else:
            ex.status = r.status_code
            ex.headers = dict(r.headers)
            ex.served_by = r.headers.get("X-Served-By")
            try:
                ex.body = r.json()
            except ValueError:
                ex.body = r.text
            if isinstance(ex.body, dict) and isinstance(ex.body.get("token"), str):
                self.token = ex.body["token"]
        ex.ms = (time.perf_counter() - start) * 1000
        if ex.trace_id:
            trace.RECORDER.add(trace.Hop(ex.trace_id, "client", None, f"{ex.method} {path}",
                                         ex.status if ex.status is not None else ex.error, start, ex.ms,
                                         detail=trace.carried(ex)))
        self.history.append(ex)
        if len(self.history) > self._keep:
            del self.history[: len(self.history) - self._keep]
        for listener in list(self.listeners):
            try:
                listener(ex)
            except Exception:  # a view that cannot update must never break the request it watched
                pass
        return ex

    def get(self, path: str, **kw: Any) -> Exchange:
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> Exchange:
        return self.request("POST", path, json=json, **kw)

    def login(self, user: str) -> Exchange:
        """Log in as ``user``: a session cookie (stateful) or a token (stateless)."""
        return self.post("/login", {"user": user})

    def me(self) -> Exchange:
        return self.get("/me")

    def cart(self) -> Exchange:
        return self.get("/cart")

    def add_to_cart(self, item: str = "book", qty: int = 1) -> Exchange:
        return self.post("/cart", {"item": item, "qty": qty})

    def logout(self) -> Exchange:
        """Log out. The browser forgets its token too; the server may not (see notebook 02)."""
        ex = self.post("/logout")
        if ex.ok:
            self.token = None
        return ex

    def health(self) -> Exchange:
        return self.get("/health")

    def catalog(self) -> Exchange:
        return self.get("/catalog")

    @property
    def last(self) -> Exchange | None:
        return self.history[-1] if self.history else None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        who = f" token={self.token[:12]}..." if self.token else ""
        return f"<Client {self.url} cookies={list(self.cookies)}{who} history={len(self.history)}>"
