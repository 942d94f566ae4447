"""LoadBalancer: an in-process reverse proxy in front of a cluster's servers.

It is a real HTTP server of its own. For each request it picks a backend by strategy,
forwards the request over a fresh loopback connection, and relays the answer (keeping the
backend's ``X-Served-By``).

Strategies:

* ``round_robin`` - each backend in turn; blind to who the client is.
* ``sticky`` - the first answer sets a balancer cookie naming the backend (as HAProxy's
  ``cookie SRV insert`` does); later requests go back to it. The cookie is named after the
  balancer's port (``statelab-lb-54321``, ``balancer.cookie_name``): a browser sends every cookie of
  127.0.0.1 to every port, so with one name for all, one cluster's re-pin would move another's users.
  If the pinned server is down, the client is re-pinned to a live one, and whatever that server held
  in memory is not there.
* ``ip_hash`` - the client's address picks the backend (``X-Forwarded-For`` when the
  client sends one, which is how a statelab ``Client(ip=...)`` plays a user at home).
* ``least_connections`` - the backend with the fewest requests in flight.
* a function of your own (the extension point the routing lab uses)::

      def pin(client_key: str, cookie: str | None, live: list[str], all: list[str]) -> str:
          ...  # return the name of the backend that should answer

      cluster.strategy = pin        # or Cluster(..., balancer=pin), LoadBalancer(servers, pin)

  ``client_key`` is the client's address (``X-Forwarded-For`` when sent), ``cookie`` the value of
  the balancer cookie (``balancer.cookie_name``) or None, ``live`` the backends not known to be down, and
  ``all`` every backend, by name. The balancer sets the cookie to the backend that answered, so a
  function that returns ``cookie`` while it is live pins a user. If the chosen backend refuses the
  connection it is marked down and the function is asked again, with ``live`` updated; choosing it
  again gets a 503. A function that raises, or names no backend, gets a 500 JSON error.

A backend that refuses the connection is marked down and the request goes to the next live
one: nothing was sent, so retrying is safe for any method. Backends marked down are tried last,
not never (a mark can be stale: the server may be back), so a 503 means every one failed. A
backend that fails after the request was sent (it crashed mid-answer) is retried on the next one
only for idempotent methods
(GET, HEAD, OPTIONS, PUT, DELETE), as nginx's ``proxy_next_upstream`` does, and for requests
that carry an ``Idempotency-Key`` header (this balancer's choice, not a standard: it relies on the
server's contract to act once per key); any other
POST gets a 502, because the server may have acted on it. A backend that does not answer within
``timeout`` seconds (a hung server) gets a 502 and nothing is re-sent, not even a GET: it may still
be working on it (nginx's default re-sends an idempotent request after a timeout; this one does not).
"""

from __future__ import annotations

import hashlib
import http.client
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from werkzeug.wrappers import Request, Response

from .. import trace
from ..service import HttpService, json_error
from ..service.registry import register
from ..service.relay import BadAnswer, CutAnswer, connect, forward, read_body
from ..shop.proxy import cookie_path

STRATEGIES = ("round_robin", "sticky", "ip_hash", "least_connections")
COOKIE = "statelab-lb"  # the sticky cookie's name starts so; each balancer adds its port (cookie_name)
RETRY_DOWN_AFTER = 0.5  # seconds before a backend marked down is tried again
IDEMPOTENT = {"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}  # RFC 9110: repeating them changes nothing more

#: A routing function: (client_key, balancer cookie or None, live backend names, all names) -> a name.
Strategy = Callable[[str, str | None, list[str], list[str]], str]


@dataclass
class Backend:
    """One server as the balancer sees it."""

    name: str
    host: str
    port: int
    down_until: float = 0.0
    in_flight: int = 0
    routed: int = 0
    server: Any = None

    @classmethod
    def of(cls, server: Any) -> Backend:
        parts = urlsplit(server.url)
        return cls(server.name, parts.hostname or "127.0.0.1", parts.port or 80, server=server)

    def honours_key(self, path: str) -> bool:
        """Whether this server acts at most once on writes to ``path`` that carry the same Idempotency-Key
        (it says so itself; a backend that cannot say, such as a bare url, is taken not to)."""
        says = getattr(self.server, "honours_idempotency_key", None)
        try:
            return bool(says(path)) if callable(says) else False
        except Exception:
            return False

    def refuses(self) -> bool:
        """Whether it refuses a connection now (it is down), asked after its answer stopped short."""
        try:
            socket.create_connection((self.host, self.port), timeout=1).close()
        except OSError:
            return True
        return False

    @property
    def up(self) -> bool:
        return time.monotonic() >= self.down_until


class LoadBalancer(HttpService):
    """A reverse proxy over ``servers`` with a routing ``strategy`` you can change live."""

    def __init__(self, servers: Iterable[Any] = (), strategy: str | Strategy = "round_robin", *,
                 name: str = "balancer", port: int = 0, timeout: float = 10.0, start: bool = True) -> None:
        super().__init__(name, port)
        self.strategy = strategy
        self.timeout = timeout
        self._backends: list[Backend] = [Backend.of(s) for s in servers]
        self._state_lock = threading.Lock()
        self._rr = itertools.count()
        if start:
            register(self)
            self.start()

    # --- configuration --------------------------------------------------------------------
    @property
    def cookie_name(self) -> str:
        """The sticky cookie's name, ``statelab-lb-<port>``: this balancer's own (a browser sends every cookie
        of 127.0.0.1 to every port, so two clusters with one name would re-pin each other's users)."""
        return f"{COOKIE}-{self.port}"

    @property
    def strategy(self) -> str | Strategy:
        return self._strategy

    @strategy.setter
    def strategy(self, value: str | Strategy) -> None:
        if callable(value):  # a routing function of your own (see the module docstring)
            self._strategy = value
            return
        if value not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)} or a function, not {value!r}")
        self._strategy = value

    def add(self, server: Any) -> None:
        """Put ``server`` in the rotation from the next request on."""
        with self._state_lock:
            self._backends.append(Backend.of(server))

    def remove(self, name: str) -> None:
        """Take the backend called ``name`` out of the rotation."""
        with self._state_lock:
            self._backends = [b for b in self._backends if b.name != name]

    def follow(self, server: Any) -> None:
        """Route to ``server`` at its current url (it came back on another port)."""
        moved = Backend.of(server)
        with self._state_lock:
            for b in self._backends:
                if b.name == moved.name:
                    b.host, b.port = moved.host, moved.port

    def mark_up(self, name: str) -> None:
        """Forget that ``name`` was seen down (a cluster calls this after a restart)."""
        with self._state_lock:
            for b in self._backends:
                if b.name == name:
                    b.down_until = 0.0

    @property
    def backends(self) -> list[str]:
        return [b.name for b in self._backends]

    @property
    def counts(self) -> dict[str, int]:
        """Requests routed to each backend since the start or the last ``reset_counts()``."""
        with self._state_lock:
            return {b.name: b.routed for b in self._backends}

    @property
    def down(self) -> list[str]:
        """The backends marked down now (each refused a connection less than RETRY_DOWN_AFTER s ago)."""
        with self._state_lock:
            return [b.name for b in self._backends if not b.up]

    @property
    def in_flight(self) -> dict[str, int]:
        with self._state_lock:
            return {b.name: b.in_flight for b in self._backends}

    def reset_counts(self) -> None:
        with self._state_lock:
            for b in self._backends:
                b.routed = 0

    # --- routing --------------------------------------------------------------------------
    def _client_key(self, request: Request) -> str:
        forwarded = request.headers.get("X-Forwarded-For", "")
        return forwarded.split(",")[0].strip()[:64] or (request.remote_addr or "")

    def _order(self, request: Request) -> tuple[list[Backend], bool]:
        """Backends to try, best first, and whether the sticky cookie must be (re)set."""
        with self._state_lock:
            backends = list(self._backends)
            if not backends:
                return [], False
            live = [b for b in backends if b.up] or backends  # all marked down: try anyway
            start = next(self._rr)
            rotation = live[start % len(live):] + live[:start % len(live)]
            if self._strategy == "round_robin":
                return rotation, False
            if self._strategy == "least_connections":
                return sorted(rotation, key=lambda b: b.in_flight), False
            if self._strategy == "ip_hash":
                digest = hashlib.sha256(self._client_key(request).encode()).digest()
                pinned = backends[int.from_bytes(digest[:4], "big") % len(backends)]
                # the address decides among all backends, so a down server does not reshuffle others
                return [pinned] + [b for b in rotation if b is not pinned], False
            pinned_name = request.cookies.get(self.cookie_name)
            for b in live:
                if b.name == pinned_name:
                    return [b] + [x for x in rotation if x is not b], False
            return rotation, True

    def _build_app(self) -> Any:
        @Request.application
        def proxy(request: Request) -> Response:
            body = read_body(request, self.name)
            if isinstance(body, Response):
                return body
            if callable(self._strategy):
                return self._route_by(self._strategy, request, body)
            order, set_cookie = self._order(request)
            if not order:
                return json_error(503, "no backend servers are configured", self.name)
            with self._state_lock:  # marked down: tried last, not never (a mark can be stale; a restart is quick)
                order += [b for b in self._backends if all(b is not o for o in order)]
            cut: list[Backend] = []  # backends that crashed while answering this request
            broken: list[Response] = []  # 502s of live backends whose answer to a read stopped short
            for backend in order:
                if cut and not self._may_repeat(request, backend):
                    continue  # a keyed write goes again only to a server that honours the key
                response = trace.attempt(request, self.name, backend.name, self._forward,
                                         backend, request, body, cut, broken, cut=cut, broken=broken)
                if response is None:
                    continue  # refused (nothing was sent), or cut by a crash and safe to repeat
                if self._strategy == "sticky" and (set_cookie or request.cookies.get(self.cookie_name) != backend.name):
                    response.set_cookie(self.cookie_name, backend.name, httponly=True, samesite="Lax",
                                        path=cookie_path(request.headers))
                return response
            if broken:
                return broken[-1]
            if cut:
                return self._not_repeated(cut[-1])
            return json_error(503, "no live backend: every server is down", self.name)

        return proxy

    def _route_by(self, choose: Strategy, request: Request, body: bytes) -> Response:
        """Route with a function: ask it for a backend; if that one refuses, ask again without it."""
        cookie = request.cookies.get(self.cookie_name)
        key = self._client_key(request)
        label = getattr(choose, "__name__", "the routing function")
        refused: list[str] = []
        cut: list[Backend] = []
        broken: list[Response] = []
        while True:
            with self._state_lock:
                backends = list(self._backends)
            names = [b.name for b in backends]
            untried = [b for b in backends if b.name not in refused]
            live = [b.name for b in untried if b.up] or [b.name for b in untried]  # all marked down: try anyway
            if not live:
                if broken:
                    return broken[-1]
                return json_error(503, "no live backend: every server is down" if names else
                                  "no backend servers are configured", self.name)
            try:
                choice = choose(key, cookie, list(live), list(names))
            except Exception as e:
                return json_error(500, f"routing function {label} raised {type(e).__name__}: {e}", self.name)
            backend = next((b for b in backends if b.name == choice), None)
            if backend is None:
                return json_error(500, f"routing function {label} returned {repr(choice)[:80]}, "
                                  f"not one of {names}", self.name)
            if choice in refused:
                return json_error(503, f"routing function {label} chose {choice} again, which refused the "
                                  f"connection; live: {live}", self.name)
            if cut and not self._may_repeat(request, backend):
                return broken[-1] if broken else self._not_repeated(cut[-1])
            response = trace.attempt(request, self.name, backend.name, self._forward,
                                     backend, request, body, cut, broken, cut=cut, broken=broken)
            if response is None:
                refused.append(choice)  # marked down; nothing was sent (or it is safe to repeat), so ask again
                continue
            if cookie != choice:
                response.set_cookie(self.cookie_name, choice, httponly=True, samesite="Lax",
                                    path=cookie_path(request.headers))
            return response

    @staticmethod
    def _keyed(request: Request) -> bool:
        return "Idempotency-Key" in request.headers

    def _may_repeat(self, request: Request, backend: Backend) -> bool:
        """Whether ``backend`` may get this request again after a crash cut it elsewhere."""
        return request.method in IDEMPOTENT or (self._keyed(request) and backend.honours_key(request.path))

    def _not_repeated(self, crashed: Backend) -> Response:
        return json_error(502, f"{crashed.name} crashed while answering (the request may have been acted on); "
                          "it carries an Idempotency-Key, but no other live server honours it, so the balancer "
                          "did not send it again", self.name)

    def _forward(self, backend: Backend, request: Request, body: bytes, cut: list[Backend],
                 broken: list[Response]) -> Response | None:
        """Relay one request; None when the next backend may take it instead.

        That is when the backend refused the connection (nothing was sent), or when it crashed
        mid-answer (its answer stopped short and it now refuses connections) and a repeat is safe:
        an idempotent method, or an ``Idempotency-Key`` this server honours (then it is added to
        ``cut``, and the request goes only to servers that honour the key too). Any other request cut
        by a crash gets a 502: the server may have acted on it, and only the client can decide
        whether to send it again. A server that still listens after a broken or cut answer is alive:
        a JSON 502, and it is not marked down; a request cut short that way (a server replaced in a rolling
        deploy, listening again before the balancer looked) that is safe to repeat goes to the next server
        first, and the 502 (kept in ``broken``) is the answer only if no other server answers.
        """
        try:
            conn = connect(backend.host, backend.port, self.timeout)
        except OSError:
            with self._state_lock:
                backend.down_until = time.monotonic() + RETRY_DOWN_AFTER
            return None
        with self._state_lock:
            backend.in_flight += 1
            backend.routed += 1
            backend.down_until = 0.0
        try:
            forwarded = request.headers.get("X-Forwarded-For")
            client = request.remote_addr or ""
            return forward(conn, request, body, {"X-Forwarded-For": f"{forwarded}, {client}" if forwarded else client})
        except ValueError as e:  # http.client refuses to send it: control characters in method or headers
            return json_error(400, f"malformed request: {e}", self.name)
        except BadAnswer as e:  # RFC 9112 5.2: a proxy answers 502 rather than relay a malformed answer
            return json_error(502, f"{backend.name} sent an answer the balancer cannot relay: {e}", self.name)
        except TimeoutError:
            with self._state_lock:
                backend.down_until = time.monotonic() + RETRY_DOWN_AFTER
            return json_error(502, f"{backend.name} did not answer within {self.timeout:g} s (the request may "
                              "have been acted on)", self.name)
        except (OSError, http.client.HTTPException) as e:  # the answer stopped short: crashed, or broken?
            if not backend.refuses():
                why = e if isinstance(e, CutAnswer) else type(e).__name__
                answer = json_error(502, f"{backend.name} sent a broken answer ({why}); it is still up", self.name)
                if self._may_repeat(request, backend):  # a repeat is safe: another server first
                    broken.append(answer)
                    if request.method not in IDEMPOTENT:
                        cut.append(backend)  # a keyed write: only to servers that honour the key
                    return None
                return answer
            with self._state_lock:
                backend.down_until = time.monotonic() + RETRY_DOWN_AFTER
            if request.method in IDEMPOTENT or (self._keyed(request) and backend.honours_key(request.path)):
                cut.append(backend)
                return None  # cut by a crash, and a repeat is safe
            unsafe = (f"; it carries an Idempotency-Key, but {backend.name} does not honour keys on "
                      f"{request.path[:60]}, so the balancer did not send it again") if self._keyed(request) else ""
            return json_error(502, f"{backend.name} failed while answering (the request may have been acted on)"
                              f"{unsafe}", self.name)
        finally:
            conn.close()
            with self._state_lock:
                backend.in_flight -= 1
