"""SharedCache: an HTTP cache in front of the servers, shared by every user (as a CDN or Varnish is).

It is a real HTTP server of its own, like :class:`~statelab.topology.balancer.LoadBalancer`: clients talk
to ``cache.url``; on a miss it forwards the request to its ``upstream`` (a server, a cluster or
a balancer) over a fresh loopback connection and may keep the answer for the next user.

Two behaviours, because the lesson is the difference between them:

* ``honour_headers=True``, a correct shared cache (RFC 9111): it stores only ``GET`` answers the
  origin marked cacheable (``public`` or ``max-age``/``s-maxage``), never ``private`` or
  ``no-store`` ones, nor an answer to a request with ``Authorization`` unless it is marked
  ``public``; it keys stored answers by the request headers the answer ``Vary``-ies on; it
  revalidates a stale answer with ``If-None-Match`` (the server answers 304, no body); and a
  ``POST`` to a url drops what it holds for that url.
* ``honour_headers=False``, a misconfigured cache (as nginx with ``proxy_ignore_headers
  Cache-Control`` and the default ``$request_uri`` key): it keeps every ``200`` answer to a
  ``GET``, keyed by the url alone, for ever. Whoever asks first decides what everyone gets.

An answer larger than :data:`~statelab.service.relay.BUFFERED` is relayed as it comes and never stored.
Every answer carries ``X-Cache: HIT | MISS | REVALIDATED | BYPASS``; ``cache.stats`` counts them
(``cache.stats_by_path`` per path) and ``cache.upstream_requests`` counts what reached the servers.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from werkzeug.wrappers import Request, Response

from .. import trace
from ..rawhttp import request_target
from ..service import HttpService, json_error
from ..service.registry import register
from ..service.relay import BadAnswer, CutAnswer, connect, forward, read_body

OUTCOMES = ("HIT", "MISS", "REVALIDATED", "BYPASS")
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def parse_cache_control(value: str | None) -> dict[str, str | None]:
    """``"public, max-age=60"`` -> ``{"public": None, "max-age": "60"}`` (names lower-cased)."""
    directives: dict[str, str | None] = {}
    for part in (value or "").split(","):
        name, sep, arg = part.strip().partition("=")
        if name:
            directives[name.strip().lower()] = arg.strip().strip('"') if sep else None
    return directives


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


@dataclass
class Entry:
    """One stored answer, and the request header values it was stored under (its Vary key)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    stored_at: float
    max_age: float | None  # None: for ever (the misconfigured cache)
    etag: str | None = None
    must_revalidate: bool = False  # Cache-Control: no-cache
    vary: tuple[str, ...] = ()
    vary_values: tuple[str, ...] = ()
    hits: int = 0

    def fresh(self, now: float) -> bool:
        if self.must_revalidate:
            return False
        return self.max_age is None or now - self.stored_at < self.max_age

    def age(self, now: float) -> int:
        return int(now - self.stored_at)


@dataclass
class _Stats:
    outcomes: Counter[str] = field(default_factory=Counter)
    by_path: dict[str, Counter[str]] = field(default_factory=dict)
    upstream: int = 0
    upstream_304: int = 0

    def count(self, path: str, outcome: str, method: str) -> None:
        by_path = self.by_path.setdefault(path, Counter())
        for c in (self.outcomes, by_path):
            c[outcome] += 1
            c[method] += 1


class SharedCache(HttpService):
    """An HTTP cache in front of ``upstream`` (anything with a ``url``, or a url string)."""

    def __init__(self, upstream: Any, *, honour_headers: bool = True, name: str | None = None, port: int = 0,
                 timeout: float = 10.0, max_entries: int = 1000, start: bool = True) -> None:
        super().__init__(name or ("cache" if honour_headers else "cache-misconfigured"), port)
        url = upstream if isinstance(upstream, str) else getattr(upstream, "url", None)
        parts = urlsplit(url or "")
        if parts.scheme != "http" or parts.hostname != "127.0.0.1" or not parts.port:
            raise ValueError(f"upstream must be a statelab server, cluster or http://127.0.0.1:PORT url, "
                             f"not {upstream!r}")
        self.upstream_url = f"http://127.0.0.1:{parts.port}"
        self._host, self._port = "127.0.0.1", parts.port
        self.honour_headers = honour_headers
        self.timeout = timeout
        self.max_entries = max_entries
        self._entries: OrderedDict[str, list[Entry]] = OrderedDict()  # url -> its variants
        self._stats = _Stats()
        self._cache_lock = threading.RLock()
        if start:
            register(self)
            self.start()

    # --- what a learner reads -------------------------------------------------------------
    @property
    def stats(self) -> dict[str, int]:
        """How many answers were HIT, MISS, REVALIDATED or BYPASS, and how many reached the servers."""
        with self._cache_lock:
            out = {k: self._stats.outcomes[k] for k in (*OUTCOMES, "GET")}
            out["upstream"] = self._stats.upstream
            out["upstream_304"] = self._stats.upstream_304
            return out

    @property
    def stats_by_path(self) -> dict[str, dict[str, int]]:
        """The same outcome counts, per request path (``/catalog``, ``/cart``, ...)."""
        with self._cache_lock:
            return {p: {k: c[k] for k in (*OUTCOMES, "GET")} for p, c in self._stats.by_path.items()}

    @property
    def upstream_requests(self) -> int:
        """Requests this cache sent to the servers (misses, revalidations and bypasses)."""
        with self._cache_lock:
            return self._stats.upstream

    def hit_ratio(self, path: str | None = None) -> float:
        """Share of ``GET`` requests (for one path, or all) answered from the cache without asking a server."""
        with self._cache_lock:
            c = self._stats.outcomes if path is None else self._stats.by_path.get(path, Counter())
            return c["HIT"] / c["GET"] if c["GET"] else 0.0

    @property
    def entries(self) -> dict[str, int]:
        """Stored answers per url (more than one when the answer varies, e.g. per Cookie)."""
        with self._cache_lock:
            return {url: len(variants) for url, variants in self._entries.items()}

    def reset_stats(self) -> None:
        with self._cache_lock:
            self._stats = _Stats()

    def clear(self) -> None:
        """Forget every stored answer (a purge)."""
        with self._cache_lock:
            self._entries.clear()

    def expire(self) -> int:
        """Let every stored answer go stale now, as if its max-age had passed; return how many.

        The next request for it is revalidated (correct cache) instead of served as it is.
        """
        with self._cache_lock:
            n = 0
            for variants in self._entries.values():
                for e in variants:
                    if e.max_age is not None:
                        e.stored_at -= e.max_age
                        n += 1
            return n

    # --- the proxy ------------------------------------------------------------------------
    def _build_app(self) -> Any:
        @Request.application
        def proxy(request: Request) -> Response:
            body = read_body(request, self.name)
            if isinstance(body, Response):
                body.headers["X-Cache"] = "BYPASS"
                return body
            start = time.perf_counter()
            response = self._handle(request, body)
            trace.verdict(request, self.name, response.headers.get("X-Cache", ""), start)
            return response

        return proxy

    def _handle(self, request: Request, body: bytes) -> Response:
        url = request_target(request.environ.get("RAW_URI"), request.path, request.query_string)  # as sent
        path = request.path
        if request.method != "GET":
            response, upstream = self._forward(request, body)
            if self.honour_headers and request.method in UNSAFE and upstream is not None and upstream < 400:
                with self._cache_lock:  # RFC 9111 4.4: a successful unsafe request invalidates the url
                    self._entries.pop(url, None)
            return self._finish(response, path, "BYPASS", request.method)
        if self.honour_headers:
            return self._get_honouring(request, url, path)
        return self._get_ignoring(request, url, path)

    def _get_ignoring(self, request: Request, url: str, path: str) -> Response:
        """The misconfigured cache: the url alone is the key, every 200 is kept for ever."""
        with self._cache_lock:
            variants = self._entries.get(url)
            entry = variants[0] if variants else None
            if entry is not None:
                entry.hits += 1
                self._entries.move_to_end(url)
        if entry is not None:
            return self._finish(self._from_entry(entry), path, "HIT")
        response, status = self._forward(request, b"")
        if status == 200 and not response.is_streamed:  # streamed: too large to keep (relay.BUFFERED)
            self._store(url, Entry(200, self._headers_of(response), response.get_data(), time.monotonic(), None))
        return self._finish(response, path, "MISS")

    def _get_honouring(self, request: Request, url: str, path: str) -> Response:
        """A correct shared cache: stores only what the origin allows, per Vary, revalidating with ETags."""
        req_cc = parse_cache_control(request.headers.get("Cache-Control"))
        if "no-store" in req_cc:
            response, _ = self._forward(request, b"")
            return self._finish(response, path, "BYPASS")
        now = time.monotonic()
        entry = self._lookup(url, request)
        if entry is not None and entry.fresh(now) and "no-cache" not in req_cc and req_cc.get("max-age") != "0":
            with self._cache_lock:
                entry.hits += 1
            return self._finish(self._from_entry(entry, request, now), path, "HIT")
        if entry is not None and entry.etag:
            response, status = self._forward(request, b"", extra={"If-None-Match": entry.etag})
            if status == 304:
                with self._cache_lock:
                    self._stats.upstream_304 += 1
                    entry.stored_at = time.monotonic()
                    entry.hits += 1
                return self._finish(self._from_entry(entry, request, time.monotonic()), path, "REVALIDATED")
        else:
            response, status = self._forward(request, b"")
        outcome = "MISS"
        stored = self._storable(request, response) if status == 200 else None
        if stored is not None:
            self._store(url, stored)
        elif status is not None and status < 500:
            outcome = "BYPASS"  # asked through the cache, but not allowed to be kept
        return self._finish(response, path, outcome)

    # --- the rules of RFC 9111 this cache follows -------------------------------------------
    def _storable(self, request: Request, response: Response) -> Entry | None:
        cc = parse_cache_control(response.headers.get("Cache-Control"))
        if "no-store" in cc or "private" in cc or response.headers.get("Set-Cookie"):
            return None
        if response.is_streamed:  # larger than relay.BUFFERED: relayed piece by piece, never held whole
            return None
        if "Authorization" in request.headers and not ({"public", "s-maxage", "must-revalidate"} & cc.keys()):
            return None  # RFC 9111 3.5: an answer to an authenticated request is the user's own
        vary = tuple(sorted({h.strip().lower() for v in response.headers.getlist("Vary")
                             for h in v.split(",") if h.strip()}))
        if "*" in vary:
            return None
        max_age = _seconds(cc.get("s-maxage")) if "s-maxage" in cc else _seconds(cc.get("max-age"))
        etag = response.headers.get("ETag")
        if max_age is None and "public" not in cc and not etag:
            return None  # no explicit freshness and nothing to revalidate with: do not guess
        return Entry(response.status_code, self._headers_of(response), response.get_data(), time.monotonic(),
                     max_age or 0.0, etag=etag, must_revalidate="no-cache" in cc, vary=vary,
                     vary_values=tuple(request.headers.get(h, "") for h in vary))

    def _lookup(self, url: str, request: Request) -> Entry | None:
        with self._cache_lock:
            for entry in self._entries.get(url, ()):
                if entry.vary_values == tuple(request.headers.get(h, "") for h in entry.vary):
                    self._entries.move_to_end(url)
                    return entry
        return None

    def _store(self, url: str, entry: Entry) -> None:
        with self._cache_lock:
            variants = [e for e in self._entries.get(url, ())
                        if not (e.vary == entry.vary and e.vary_values == entry.vary_values)]
            variants.append(entry)
            self._entries[url] = variants
            self._entries.move_to_end(url)
            while sum(len(v) for v in self._entries.values()) > self.max_entries:
                oldest = next(iter(self._entries))
                if len(self._entries[oldest]) > 1:
                    self._entries[oldest].pop(0)
                else:
                    del self._entries[oldest]

    # --- plumbing ---------------------------------------------------------------------------
    @staticmethod
    def _headers_of(response: Response) -> list[tuple[str, str]]:
        return [(k, v) for k, v in response.headers.items() if k.lower() not in ("x-cache", "age")]

    def _from_entry(self, entry: Entry, request: Request | None = None, now: float | None = None) -> Response:
        inm = request.headers.get("If-None-Match") if request is not None else None
        if inm and entry.etag and entry.etag in (t.strip() for t in inm.split(",")):
            keep = ("etag", "cache-control", "vary", "x-served-by")
            response = Response(status=304, headers=[(k, v) for k, v in entry.headers if k.lower() in keep])
            response.headers.pop("Content-Type", None)
        else:
            response = Response(entry.body, status=entry.status, headers=entry.headers)
        response.headers["Age"] = str(entry.age(time.monotonic() if now is None else now))
        return response

    def _finish(self, response: Response, path: str, outcome: str, method: str = "GET") -> Response:
        with self._cache_lock:
            self._stats.count(path, outcome, method)
        response.headers["X-Cache"] = outcome
        response.headers.add("Via", f"1.1 {self.name}")
        return response

    def _forward(self, request: Request, body: bytes,
                 extra: dict[str, str] | None = None) -> tuple[Response, int | None]:
        """Relay one request to the upstream, as a hop of its trace when it carries one."""
        return trace.attempt(request, self.name, None, self._relay, request, body, extra)

    def _relay(self, request: Request, body: bytes,
               extra: dict[str, str] | None = None) -> tuple[Response, int | None]:
        """Relay one request to the upstream; (answer, upstream status or None when it failed)."""
        with self._cache_lock:
            self._stats.upstream += 1
        bypass = {"X-Cache": "BYPASS"}
        try:
            conn = connect(self._host, self._port, self.timeout)
        except OSError:
            return json_error(502, f"{self.name}: the servers behind the cache did not answer", self.name,
                              **bypass), None
        try:
            response = forward(conn, request, body, extra)
        except ValueError as e:  # http.client refuses to send it: control characters in method or headers
            return json_error(400, f"malformed request: {e}", self.name, **bypass), None
        except BadAnswer as e:  # RFC 9112 5.2: a proxy answers 502 rather than relay a malformed answer
            return json_error(502, f"{self.name}: the servers behind the cache sent an answer it cannot relay: "
                              f"{e}", self.name, **bypass), None
        except CutAnswer as e:  # the answer stopped short: no answer, a reset, a cut body
            return json_error(502, f"{self.name}: the servers behind the cache broke off their answer ({e})",
                              self.name, **bypass), None
        except (TimeoutError, OSError, http.client.HTTPException):
            return json_error(502, f"{self.name}: the servers behind the cache did not answer", self.name,
                              **bypass), None
        finally:
            conn.close()
        return response, response.status_code
