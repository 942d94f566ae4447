"""Reusable app plugins: small additions to a bookshop server, passed as ``plugins=[...]``.

A plugin is called as ``plugin(app)`` after the routes exist (see :func:`statelab.shop.app.create_app`);
it may add routes or request hooks, and asks ``app.extensions["statelab"].current()`` who is
asking (``app.extensions["statelab"]`` is the app's :class:`~statelab.shop.config.ShopState`).
Lessons and experiments share the ones here instead of keeping copies:

* :func:`store_errors_as_503`: a shared store that is down gives a 503, not a 500 (with
  :class:`~statelab.shop.sessions.OutageStore`);
* :func:`slow_writes` and :class:`InFlight`: writes that take as long as real ones, and a count of
  the requests each server is answering (what a crash meets, what a drain waits for);
* :class:`IdempotencyKeys` and :func:`idempotent_writes`: a ``POST /cart`` with an
  ``Idempotency-Key`` acts once per user and key, however often it is sent (the same key with
  another body: 422), and is forgotten after a day;
* :class:`OrderBook` and :func:`checkout`: a two-step checkout that turns the cart into an order;
* :func:`personal_headers` and :func:`login_keeping_the_id`: the caching and session-fixation bugs,
  to show against our own servers what the app defends against.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, g, jsonify, request

from .app import NAME_RE
from .rules import ApiError
from .sessions import StoreUnavailable

#: The per-user answers :func:`personal_headers` rewrites.
PERSONAL_PATHS = ("/me", "/cart")


def personal_headers(policy: dict[str, str]) -> Callable[[Any], None]:
    """A plugin that rewrites the caching headers of ``GET /me`` and ``GET /cart`` answers.

    ``policy["personal"]`` is read at every request, so one running server can play each set-up:
    ``"private"`` leaves the app's ``Cache-Control: private, no-store``; ``"public+vary"`` makes it
    ``public, max-age=60`` and keeps ``Vary``; ``"public"`` also drops ``Vary`` (the classic bug);
    ``"max-age"`` sends only ``max-age=60``, no ``private``, no ``Vary`` (the commonest bug, which
    RFC 9111 section 3.5 makes safe for requests with ``Authorization`` and only for those).
    It wraps the WSGI app, so it sees the headers after Flask has set them.
    """

    def plugin(app: Any) -> None:
        inner = app.wsgi_app

        def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            mode = policy.get("personal", "private")
            if mode == "private" or environ.get("REQUEST_METHOD") != "GET" \
                    or environ.get("PATH_INFO") not in PERSONAL_PATHS:
                return inner(environ, start_response)

            def rewrite(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                drop = {"cache-control"} | ({"vary"} if mode in ("public", "max-age") else set())
                headers = [(k, v) for k, v in headers if k.lower() not in drop]
                headers.append(("Cache-Control", "max-age=60" if mode == "max-age" else "public, max-age=60"))
                return start_response(status, headers, exc_info)

            return inner(environ, rewrite)

        app.wsgi_app = wsgi

    return plugin


def login_keeping_the_id(app: Flask) -> None:
    """A plugin adding ``POST /login-naive``: a login that keeps the session id the browser had.

    This is the bug session fixation exploits (frameworks that write the user into the existing
    session without issuing a new id). It exists only to show, against our own server, what the
    real ``/login`` defends against. Stateful servers only.
    """
    state = app.extensions["statelab"]
    if state.mode != "stateful":
        raise ValueError("login_keeping_the_id is for stateful servers (it keeps a server-side session id)")

    @app.post("/login-naive")
    def login_naive():
        data = request.get_json(force=True, silent=True)
        user = data.get("user") if isinstance(data, dict) else None
        if not isinstance(user, str) or not NAME_RE.fullmatch(user):
            return jsonify(error="user must be 1-64 characters: letters, digits, '.', '_' or '-'"), 400
        store, name = state.store, state.cookie_name
        old = request.cookies.get(name, "")
        fresh = {"user": user, "cart": []}
        if 0 < len(old) <= 256 and store.update(old, lambda _: fresh) is not None:
            sid = old  # the bug: the session that existed before login now belongs to `user`
        else:
            sid = store.create(fresh, state.session_ttl)
        response = jsonify(user=user)
        response.set_cookie(name, sid, httponly=True, samesite="Lax", path="/")
        return response


#: An ``Idempotency-Key`` the plugins accept (fullmatch): a client's random name for one attempt.
KEY_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")


def store_errors_as_503(app: Flask) -> None:
    """Plugin: a server whose shared store is unreachable answers 503 JSON (without it: a 500)."""

    @app.errorhandler(StoreUnavailable)
    def store_unavailable(e: StoreUnavailable):
        return jsonify(error=f"service unavailable: {e}"), 503


def _is_write() -> bool:
    return request.method == "POST" and request.path == "/cart"


def slow_writes(seconds: float) -> Callable[[Flask], None]:
    """Plugin: every ``POST /cart`` takes ``seconds`` more *after* its change is made.

    On loopback a write takes well under a millisecond, so almost none is ever in flight when a
    server dies. A real write commits to a database, calls another service, renders an answer:
    tens of milliseconds in which the change has happened and the answer has not left. This
    plugin stands for that time, so a crash or a deploy meets writes in flight, as it does in
    production.
    """
    if not 0 <= seconds <= 5:
        raise ValueError("seconds must be from 0 to 5")

    def plugin(app: Flask) -> None:
        @app.after_request
        def work(response: Response) -> Response:
            if _is_write():
                time.sleep(seconds)
            return response

    return plugin


class InFlight:
    """Plugin: counts the requests each server is working on right now, by kind.

    Kinds: ``"read"`` (anything but a cart write), ``"write"`` (``POST /cart`` without an
    ``Idempotency-Key``) and ``"keyed write"`` (with one). A deploy tool drains a server by
    waiting until :meth:`now` says 0; an experiment waits until writes are in flight before it
    crashes a server. Pass the same object to every server of a cluster: ``plugins=[in_flight]``.
    """

    def __init__(self) -> None:
        self._now: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def __call__(self, app: Flask) -> None:
        name = app.extensions["statelab"].name
        inner = app.wsgi_app

        def counted(environ: dict[str, Any], start_response: Any) -> Any:
            # counted until the last byte of the answer is handed to the socket, not just until the view returns
            write = environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO") == "/cart"
            kind = ("keyed write" if "HTTP_IDEMPOTENCY_KEY" in environ else "write") if write else "read"
            with self._lock:
                self._now[(name, kind)] += 1
            try:
                yield from inner(environ, start_response)
            finally:
                with self._lock:
                    self._now[(name, kind)] -= 1

        app.wsgi_app = counted  # type: ignore[method-assign]

    def now(self, server: str, kind: str | None = None) -> int:
        """Requests ``server`` (its name) is working on right now (of ``kind``, or all kinds)."""
        with self._lock:
            return sum(n for (name, k), n in self._now.items() if name == server and kind in (None, k))

    def wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Poll ``condition`` every 2 ms for up to ``timeout`` seconds; whether it came true."""
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() >= end:
                return False
            time.sleep(0.002)
        return True


#: How long a remembered answer is kept by default: a day, as the IETF Idempotency-Key draft suggests.
KEY_TTL = 24 * 3600.0
#: How long an attempt may hold a key by default before a repeat stops waiting for it and runs anew.
CLAIM_TTL = 60.0
#: How many keys are remembered at most by default; past it a new key is refused with a 503 until some expire.
MAX_KEYS = 100_000


def fingerprint(method: str, path: str, body: bytes, query: bytes = b"") -> str:
    """What a key is bound to: the method, the path (with its query) and the body of its first request.

    A JSON body counts by its meaning, not its spelling: a client that re-serialises its retry with other
    spaces or key order sends the same request. Any other body counts byte for byte.
    """
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode("utf-8", "surrogateescape"), query, canonical):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


@dataclass
class Claim:
    """One attempt's hold on a key: ``answer`` is the remembered answer when the key was already used."""

    scope: tuple[str, str]
    answer: tuple[int, Any] | None = None
    fingerprint: str | None = None
    token: object = field(default_factory=object)  # which attempt holds the key (a late one must not clobber)


@dataclass
class _Record:
    fingerprint: str | None
    expires: float                           # the claim's deadline while running, the answer's after
    owner: object | None = None              # the attempt running now (None once answered)
    answer: tuple[int, Any] | None = None


class OnceByKey:
    """``once()`` built on a key store's ``acquire``/``remember``/``release``: the part every idempotency-key store
    shares (:class:`IdempotencyKeys` in memory, ``statelab.production.idempotency.RedisIdempotencyKeys`` on Valkey)."""

    def acquire(self, scope: tuple[str, str], fingerprint: str | None = None) -> Any:
        raise NotImplementedError

    def remember(self, claim: Any, answer: tuple[int, Any]) -> None:
        raise NotImplementedError

    def release(self, claim: Any) -> None:
        raise NotImplementedError

    def once(self, scope: tuple[str, str], act: Callable[[], tuple[int, Any]],
             fingerprint: str | None = None) -> tuple[int, Any, bool]:
        """Run ``act`` once per ``scope`` (user, key); later calls get the stored answer and ``True``."""
        claim = self.acquire(scope, fingerprint)
        try:
            if claim.answer is not None:
                return claim.answer[0], claim.answer[1], True
            status, body = act()
            self.remember(claim, (status, body))
            return status, body, False
        finally:
            self.release(claim)


class IdempotencyKeys(OnceByKey):
    """What the servers remember per ``Idempotency-Key``: the request it came with, and the first answer.

    Shared by every server of a cluster (Redis or a table, in real life). Keys are scoped by user,
    so one user's key never replays another's answer. A key is bound to the request it first came
    with (method, path and body, see :func:`fingerprint`): the same key with another request is a
    client's mistake, answered 422 as the IETF Idempotency-Key draft says, never a replay of an
    answer to something else (which would silently drop the second item).

    A repeat that arrives while the first attempt still runs waits for it, then gets the same answer.
    Nothing is kept for ever: an answer is forgotten ``ttl`` seconds after it was given (a day by
    default: a retry comes within seconds or minutes), and a claim whose attempt never finishes (its
    server died) lapses after ``claim_ttl`` seconds, so the next attempt runs instead of waiting for
    ever. Pick ``claim_ttl`` longer than any write takes: an attempt still running when it lapses may
    act a second time. There is no lock object per key, only one record, so 2,000 keys used and
    expired leave nothing behind. At most ``max_keys`` are remembered at once: logins need no
    password, so anyone could otherwise fill memory with keys; past it a new key gets a JSON 503
    (the write is refused, not done without its key) until old ones expire.
    """

    def __init__(self, ttl: float = KEY_TTL, claim_ttl: float = CLAIM_TTL, max_keys: int = MAX_KEYS) -> None:
        if not 0 < ttl <= 30 * 86400 or not 0 < claim_ttl <= 3600:
            raise ValueError("ttl must be from 0 to 30 days and claim_ttl from 0 to 3600 s, both above 0")
        if type(max_keys) is not int or max_keys < 1:
            raise ValueError("max_keys must be a whole number, at least 1")
        self.ttl = float(ttl)
        self.claim_ttl = float(claim_ttl)
        self.max_keys = max_keys
        self._records: dict[tuple[str, str], _Record] = {}
        self._changed = threading.Condition()
        self._last_sweep = self._next_sweep = 0.0

    def _sweep(self, now: float, full: bool = False) -> None:
        """Forget what expired (under the condition's lock): a full pass at most every quarter of the shorter
        ttl, or once a second while the keys are at ``max_keys``."""
        if now < self._next_sweep and not (full and now >= self._last_sweep + 1.0):
            return
        self._last_sweep, self._next_sweep = now, now + min(self.ttl, self.claim_ttl) / 4
        live = {scope: r for scope, r in self._records.items() if r.expires > now}
        if len(live) < len(self._records):
            self._records = live  # a new dict: one that only had keys deleted keeps its old size in memory

    def acquire(self, scope: tuple[str, str], fingerprint: str | None = None) -> Claim:
        """Hold ``scope`` (user, key) for this attempt, or get its remembered answer (``claim.answer``).

        Waits while another attempt holds it. Raises :class:`ApiError` 422 when the key was used with
        another request (another ``fingerprint``). Call :meth:`release` once after each acquire.
        """
        with self._changed:
            while True:
                now = time.monotonic()
                self._sweep(now)
                record = self._records.get(scope)
                if record is not None and record.expires <= now:
                    del self._records[scope]
                    record = None
                if record is not None and record.fingerprint != fingerprint:
                    raise ApiError(422, "this Idempotency-Key was already used with another request (another "
                                        "method, path or body): send a new key for a new request")
                if record is None and len(self._records) >= self.max_keys:
                    self._sweep(now, full=True)
                    if len(self._records) >= self.max_keys:
                        raise ApiError(503, f"too many idempotency keys remembered ({self.max_keys:,}): try "
                                            "again later, when older keys have expired")
                if record is None:
                    claim = Claim(scope, None, fingerprint)
                    self._records[scope] = _Record(fingerprint, now + self.claim_ttl, owner=claim.token)
                    return claim
                if record.owner is None:
                    return Claim(scope, record.answer, fingerprint)
                self._changed.wait(record.expires - now)

    def remember(self, claim: Claim, answer: tuple[int, Any]) -> None:
        """Store the answer of an attempt that acted (below 400); an error changed nothing, so a retry runs anew."""
        if answer[0] >= 400:
            return
        with self._changed:
            record = self._records.get(claim.scope)
            if record is not None and record.owner is claim.token:
                record.owner, record.answer = None, answer
                record.expires = time.monotonic() + self.ttl
                self._changed.notify_all()

    def release(self, claim: Claim) -> None:
        """Let the next attempt in: an attempt that remembered no answer gives its key back unused."""
        with self._changed:
            record = self._records.get(claim.scope)
            if record is not None and record.owner is claim.token:
                del self._records[claim.scope]
            self._changed.notify_all()

    def __len__(self) -> int:
        """Answers remembered now (expired ones are not counted)."""
        now = time.monotonic()
        with self._changed:
            return sum(1 for r in self._records.values() if r.owner is None and r.expires > now)


def _key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is not None and not KEY_RE.fullmatch(key):
        raise ApiError(400, "Idempotency-Key must be 1-64 characters: letters, digits, '.', '_' or '-'")
    return key


def _fingerprint() -> str:
    """The request being answered, as :meth:`IdempotencyKeys.acquire` compares it."""
    return fingerprint(request.method, request.path, request.get_data(cache=True), request.query_string)


def idempotent_writes(keys: IdempotencyKeys) -> Callable[[Flask], None]:
    """Plugin: a ``POST /cart`` carrying an ``Idempotency-Key`` is acted on once per user and key.

    A repeat (a client's retry, or the balancer re-sending a request cut by a crash) gets the
    first answer again, with ``Idempotent-Replayed: true``, instead of adding the item twice;
    the same key with another body gets a JSON 422 (see :class:`IdempotencyKeys`). The answer is
    remembered in ``after_request``; Flask runs those hooks last-registered first,
    so list this plugin *after* one that does slow work after the change (:func:`slow_writes`):
    then the record exists before the slow part, as it would be committed with the change.
    """

    def plugin(app: Flask) -> None:
        current = app.extensions["statelab"].current
        app.extensions["statelab"].keyed_paths.add("/cart")  # the balancer asks (may repeat)

        @app.before_request
        def replay() -> Response | None:
            if not _is_write():
                return None
            key = _key()
            if key is None:
                return None
            request.get_data(cache=True)  # the whole body first: a request cut short never claims its key
            user, _ = current()
            claim = keys.acquire((user, key), _fingerprint())  # 422 when the key came with another request
            g.statelab_idempotency = claim
            if claim.answer is None:
                return None
            status, body = claim.answer
            return Response(body, status=status, mimetype="application/json",
                            headers={"Idempotent-Replayed": "true"})

        @app.after_request
        def record(response: Response) -> Response:
            claim = g.get("statelab_idempotency")
            if claim is not None and claim.answer is None:
                keys.remember(claim, (response.status_code, response.get_data()))
            return response

        @app.teardown_request
        def release(_: BaseException | None) -> None:
            claim = g.pop("statelab_idempotency", None)
            if claim is not None:
                keys.release(claim)

    return plugin


class OrderBook:
    """Orders: business data every server of a cluster writes to (a database table, in real life)."""

    def __init__(self) -> None:
        self._orders: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def place(self, user: str, items: list[dict[str, Any]], checkout: str | None = None) -> dict[str, Any]:
        """Record an order of ``items`` for ``user`` (from the checkout ``checkout``, if there was one)."""
        with self._lock:
            order = {"order": f"o{len(self._orders) + 1}-{secrets.token_hex(3)}", "user": user,
                     "items": [dict(line) for line in items]}
            if checkout is not None:
                order["checkout"] = checkout
            self._orders.append(order)
            return dict(order)

    def of(self, user: str) -> list[dict[str, Any]]:
        """The orders ``user`` placed."""
        with self._lock:
            return [dict(o) for o in self._orders if o["user"] == user]

    def __len__(self) -> int:
        with self._lock:
            return len(self._orders)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {len(self)} placed>"


def place_order(state: dict[str, Any], orders: OrderBook, checkout: str | None = None) -> tuple[int, dict[str, Any]]:
    """Take the asking user's cart, in one atomic change wherever it lives, and turn it into an order: ``(201, body)``.

    Every checkout goes through here, so every design gets the same rule: the cart is taken by the
    app's ``change_cart`` (a session update, a cart-table row, or a new token with an empty cart),
    never read in one step and emptied in another. A cart already taken (empty) is a JSON 409.
    ``body`` holds the order and what the reply must carry (a new token when the cart is in it).
    """
    user, _ = state["current"]()
    taken: list[list[dict[str, Any]]] = []

    def take(cart: list[dict[str, Any]]) -> list[dict[str, Any]]:
        taken.append(cart)
        return []

    _, reply = state["change_cart"](take)  # one atomic change, wherever the cart lives
    if not taken or not taken[-1]:
        raise ApiError(409, "nothing to check out: the cart is empty (already checked out?)")
    return 201, {"order": orders.place(user, taken[-1], checkout), **reply}


def checkout(orders: OrderBook, idempotency: IdempotencyKeys | None = None) -> Callable[[Any], None]:
    """A plugin adding ``POST /checkout/start``, ``POST /checkout/confirm`` and ``GET /orders``, in any design.

    Starting a checkout puts a snapshot of the cart beside the login (in the session, or in the
    token). Confirming *takes* the cart, in one atomic change wherever it lives, and turns it into
    an order; a confirm that finds the cart already taken gets 409. So a repeated confirm is
    refused where the cart lives on the server (a session, the cart table), but not where it
    travels in the token: the repeat carries the old cart again. With ``idempotency``, a confirm
    carrying an ``Idempotency-Key`` header is acted on once per user and key; a repeat gets the
    first answer and ``Idempotent-Replayed: true``.
    """

    def plugin(app: Any) -> None:
        state = app.extensions["statelab"]
        identity = state.identity
        if idempotency is not None:  # the balancer asks (it may repeat a keyed confirm cut by a crash)
            state.keyed_paths.add("/checkout/confirm")

        @app.post("/checkout/start")
        def checkout_start():
            _, data = state.current()
            cart = data["cart"]
            if not cart:
                raise ApiError(409, "your cart is empty: add something before checking out")
            snapshot = {"id": secrets.token_hex(4), "items": cart}
            _, reply = identity.change(identity.current(), lambda d: {**d, "checkout": snapshot})
            return jsonify(checkout=snapshot, **reply)

        def confirm() -> tuple[int, dict[str, Any]]:
            _, data = state["current"]()
            snapshot = data.get("checkout")
            if not isinstance(snapshot, dict):
                raise ApiError(409, "nothing to confirm: no checkout in progress (start one first)")
            return place_order(state, orders, str(snapshot.get("id")))

        @app.post("/checkout/confirm")
        def checkout_confirm():
            key = _key()
            if idempotency is None or key is None:
                status, body = confirm()
                return jsonify(body), status

            def act() -> tuple[int, dict[str, Any]]:
                try:
                    return confirm()
                except ApiError as e:
                    return e.status, {"error": e.message}

            status, body, replayed = idempotency.once((identity.current().user, key), act, _fingerprint())
            response = jsonify(body)
            response.status_code = status
            if replayed:
                response.headers["Idempotent-Replayed"] = "true"
            return response

        @app.get("/orders")
        def orders_list():
            return jsonify(orders=orders.of(identity.current().user))

        @app.after_request
        def no_store(response):
            if request.endpoint in ("checkout_start", "checkout_confirm", "orders_list"):
                response.headers["Cache-Control"] = "private, no-store"
            return response

    return plugin
