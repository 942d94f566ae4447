"""The demo bookshop: one Flask app factory, two independent choices.

Who you are (``mode``, one class each in :mod:`statelab.shop.identity`):

``"stateful"``  an opaque random id in a session cookie; the server keeps the session in a store.
``"stateless"`` a JWT sent as ``Authorization: Bearer``, signed with the cluster's
                :class:`~statelab.shop.tokens.Keyring`; the server keeps only keys.
``"cookie"``    Flask's own signed-cookie session: the state in a cookie the user can read but not change.

Where the cart lives (``cart``, one placement each in :mod:`statelab.shop.carts`):

``"session"``   in the server-side session (the default for ``"stateful"``);
``"token"``     inside the JWT or the signed cookie (the default for ``"stateless"`` and ``"cookie"``);
``"db"``        in a table keyed by user that every server of a cluster shares; the credential then
                carries identity only.

Every combination speaks the same HTTP contract (DESIGN.md), so a notebook can swap one for another
and measure only the difference that matters. Every error is JSON; bad input is a 4xx. State-changing
requests must send JSON as ``application/json`` (415 otherwise) and, when they carry an ``Origin``, come
from this server's own origin (403 otherwise): the two rules that keep another site's form out.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from .. import trace
from .carts import CARTS, CartStore, add_line, placement
from .identity import BearerToken, Identity, SessionId, SignedCookie
from .page import render as render_page
from .proxy import ProxyAwareSessionInterface
from .rules import ITEM_RE, MAX_BODY, MAX_CART_LINES, NAME_RE, ApiError
from .sessions import MemoryStore, SessionStore, SessionStoreFull
from .tokens import Keyring

__all__ = ["CARTS", "CATALOG", "DEFAULT_CART", "ITEM_RE", "MAX_BODY", "MAX_CART_LINES", "MODES", "NAME_RE",
           "ApiError", "Plugin", "add_line", "create_app", "default_cart"]

MODES = ("stateful", "stateless", "cookie")
DEFAULT_CART = {"stateful": "session", "stateless": "token", "cookie": "token"}
IDENTITIES = {"stateful": "a session id cookie", "stateless": "a JWT bearer token", "cookie": "a signed cookie"}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

CATALOG = [
    {"item": "book", "title": "A Book About Servers", "price": 12.0},
    {"item": "sicp", "title": "Structure and Interpretation of Computer Programs", "price": 45.0},
    {"item": "ddia", "title": "Designing Data-Intensive Applications", "price": 39.0},
    {"item": "rfc7519", "title": "RFC 7519, bound in leather", "price": 7.5},
    {"item": "tcp-ip", "title": "TCP/IP Illustrated", "price": 55.0},
    {"item": "sre", "title": "Site Reliability Engineering", "price": 30.0},
]

#: A plugin receives the app after its routes are registered (labs use this to add behaviour).
Plugin = Callable[[Flask], None]


def default_cart(mode: str, cart: str | None = None) -> str:
    """``cart``, or the usual place for ``mode`` when None; a clear ValueError for a design that does not fit.

    A session id keeps the cart in the session (``"session"``), a token or signed cookie inside itself
    (``"token"``); any of them can keep it in a shared table instead (``"db"``).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if cart is None:
        return DEFAULT_CART[mode]
    if cart not in CARTS:
        raise ValueError(f"cart must be one of {', '.join(CARTS)}, not {cart!r}")
    if cart not in (DEFAULT_CART[mode], "db"):
        home = DEFAULT_CART[mode]
        raise ValueError(f"cart={cart!r} does not fit mode={mode!r}: {IDENTITIES[mode]} keeps the cart in "
                         f"the {home} (cart={home!r}) or in a shared table (cart='db')")
    return cart


def create_app(
    mode: str = "stateful",
    *,
    cart: str | None = None,
    name: str = "server",
    store: SessionStore | None = None,
    carts: CartStore | None = None,
    keyring: Keyring | None = None,
    secret_key: bytes | None = None,
    session_ttl: float = 1800,
    token_ttl: float = 900,
    token_max_age: float | None = None,
    session_max_age: float | None = None,
    cookie_name: str = "sid",
    csrf_guard: bool = True,
    plugins: Iterable[Plugin] = (),
) -> Flask:
    """Build the bookshop app for one server.

    ``mode`` is who you are, ``cart`` where the cart lives (see the module docstring; a combination
    that does not fit, such as ``"stateful"`` with ``cart="token"``, is a ValueError).
    ``store`` is where stateful sessions live (a fresh :class:`MemoryStore` when omitted);
    ``carts`` is the shared cart table for ``cart="db"`` (a fresh in-memory one when omitted: pass
    the same one to every server of a cluster); ``keyring`` signs and checks tokens in stateless
    mode (a fresh one when omitted: pass the same keyring to every server of a cluster).
    ``session_ttl`` is a session's idle lifetime (stateful) and the signed cookie's absolute one
    (``session_max_age``, when given, also ends a stateful session that many seconds after its login,
    however busy: the absolute timeout OWASP asks for beside the idle one)
    (cookie); ``token_ttl`` a token's, and ``token_max_age`` (default ``token_ttl``) caps how long a
    renewed token may outlive the login. ``csrf_guard=False`` switches off the JSON content-type and
    same-origin checks, to show first what they defend against.

    ``plugins`` are how lessons and labs extend a server without editing this package: each is
    called as ``plugin(app)`` after the routes exist, and may add routes or request hooks.
    ``app.extensions["statelab"]`` gives them the server's parts: ``name``, ``mode``, ``cart``,
    ``store``, ``carts``, ``keyring``, ``session_ttl``, ``token_ttl``, ``cookie_name``, ``csrf_guard``
    (switchable while the server runs), ``identity``, ``placement``, ``current()``, which returns
    ``(user, state)`` for the request being answered (session data, or token claims, with the
    ``cart`` wherever it lives) or raises :class:`ApiError` 401, exactly as the built-in routes do
    (in stateful mode it also sets ``flask.g.sid``), and ``change_cart(fn)``, which applies
    ``fn(cart) -> new cart`` atomically wherever the cart lives and returns ``(new cart, reply
    fields)`` (a renewed ``token`` when the cart is in one): a checkout written with it works in
    every design.
    """
    cart = default_cart(mode, cart)
    app = Flask(f"statelab.{name}")
    app.session_interface = ProxyAwareSessionInterface()  # cookie Path=/ unless behind Jupyter's proxy
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY,
        SECRET_KEY=secret_key or secrets.token_bytes(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME=f"{cookie_name}-signed" if mode == "cookie" else "session",
        PERMANENT_SESSION_LIFETIME=max(1, int(session_ttl)),  # also bounds the signature's age
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    if mode == "stateful" and store is None:
        store = MemoryStore()
    if mode == "stateless" and keyring is None:
        keyring = Keyring()
    identity: Identity
    if mode == "stateful":
        identity = SessionId(store, cookie_name, float(session_ttl), session_max_age)
    elif mode == "stateless":
        identity = BearerToken(keyring, float(token_ttl), token_max_age)
    else:
        identity = SignedCookie(float(session_ttl))
    where = placement(cart, identity, carts)
    state = {
        "name": name,
        "mode": mode,
        "cart": cart,
        "store": store if mode == "stateful" else None,
        "carts": getattr(where, "store", None),
        "keyring": keyring if mode == "stateless" else None,
        "session_ttl": float(session_ttl),
        "token_ttl": float(token_ttl),
        "token_max_age": float(token_ttl if token_max_age is None else token_max_age),
        "cookie_name": cookie_name,
        "csrf_guard": bool(csrf_guard),
        "identity": identity,
        "placement": where,
        "requests": itertools.count(1),
        "served": 0,
    }
    app.extensions["statelab"] = state
    _register_errors(app)
    _register_guard(app, state)
    _register_routes(app, state)
    trace.instrument_app(app, state)  # records only requests that carry a trace id (statelab/trace.py)
    for plugin in plugins:
        plugin(app)
    return app


# --------------------------------------------------------------------------- input checks

def _body() -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if request.content_length is None and len(raw) >= MAX_BODY:
        # a chunked body has no Content-Length to refuse up front; werkzeug stops reading at the cap
        raise ApiError(413, f"request body is larger than {MAX_BODY // 1024} KiB")
    try:
        data = request.get_json(force=True, silent=True)  # the type was checked by the guard (when on)
    except RecursionError:  # [[[[...]]]] nested deeper than the parser's stack
        data = None
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object, for example {\"user\": \"alice\"}")
    return data


def _user_from(data: dict[str, Any]) -> str:
    user = data.get("user")
    if not isinstance(user, str) or not NAME_RE.fullmatch(user):
        raise ApiError(400, "user must be 1-64 characters: letters, digits, '.', '_' or '-'")
    return user


def _line_from(data: dict[str, Any]) -> tuple[str, int]:
    item = data.get("item")
    if not isinstance(item, str) or not ITEM_RE.fullmatch(item):
        raise ApiError(400, "item must be 1-64 characters: letters, digits, spaces, '.', '_' or '-'")
    qty = data.get("qty", 1)
    if type(qty) is not int or not 1 <= qty <= 99:
        raise ApiError(400, "qty must be a whole number from 1 to 99")
    return item, qty


# --------------------------------------------------------------------------- errors

def _register_errors(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(e: ApiError):
        return jsonify(error=e.message), e.status

    @app.errorhandler(SessionStoreFull)
    def store_full(e: SessionStoreFull):  # no user is logged out to make room: the newcomer waits
        response = jsonify(error=f"{e}: no new login until a session ends or expires "
                                 f"(try again in {e.retry_after} s)")
        response.status_code = 503
        response.headers["Retry-After"] = str(e.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        messages = {
            404: "no such path; try /, /health, /login, /me, /cart, /logout or /catalog",
            405: f"method {request.method} is not allowed here",
            413: f"request body is larger than {MAX_BODY // 1024} KiB",
        }
        response = jsonify(error=messages.get(e.code or 400, e.description or e.name))
        response.status_code = e.code or 400
        if e.code == 405:
            allowed = e.get_response().headers.get("Allow")
            if allowed:
                response.headers["Allow"] = allowed
        return response

    @app.errorhandler(Exception)
    def unexpected(e: Exception):  # a bug, not bad input: still JSON, and the server stays up
        app.logger.exception("unexpected error")
        return jsonify(error=f"internal error ({type(e).__name__})"), 500


# --------------------------------------------------------------------------- the CSRF guard

def _host_port(netloc: str, scheme: str) -> tuple[str, int | None] | None:
    try:
        parts = urlsplit(f"//{netloc.strip()}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), port if port is not None else {"http": 80, "https": 443}.get(scheme)


def same_origin(origin: str, host: str, forwarded_hosts: str = "", scheme: str = "http",
                forwarded_proto: str = "") -> bool:
    """Whether the ``Origin`` a browser sent is this server's origin, as the browser saw it.

    An origin is a scheme, a host and a port: ``https://127.0.0.1:8001`` is another origin than
    ``http://127.0.0.1:8001``, even on the same port. The browser saw ``host`` (the ``Host`` header), or,
    behind a proxy or the balancer, one of the hosts in ``X-Forwarded-Host``. It used ``scheme`` (this
    server's own), unless a proxy in front says otherwise in ``X-Forwarded-Proto`` (``forwarded_proto``;
    its first value is the browser's hop): Jupyter's proxy on Binder is reached over https while our
    server speaks http. A proxy that names the host but not the scheme leaves the scheme of that host
    open. Trusting these headers is safe here: a page on another site cannot make a browser send them
    (a custom header on a cross-origin request needs a CORS preflight, which this server never grants).
    ``Origin: null`` (sandboxed frames, ``file:`` pages) is another origin.
    """
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
        return False
    theirs = _host_port(parts.netloc, parts.scheme)
    if theirs is None:
        return False
    proto = forwarded_proto.split(",")[0].strip().lower()
    if parts.scheme == (proto or scheme.lower()) and _host_port(host, parts.scheme) == theirs:
        return True
    return (not proto or parts.scheme == proto) and any(
        _host_port(h, parts.scheme) == theirs for h in forwarded_hosts.split(",") if h.strip())


def _register_guard(app: Flask, state: dict[str, Any]) -> None:
    @app.before_request
    def refuse_cross_site_writes():
        if not state["csrf_guard"] or request.method in SAFE_METHODS or request.routing_exception is not None:
            return None
        origin = request.headers.get("Origin")
        if origin is not None and not same_origin(origin, request.host, request.headers.get("X-Forwarded-Host", ""),
                                                  request.scheme, request.headers.get("X-Forwarded-Proto", "")):
            raise ApiError(403, f"cross-origin request refused: it came from a page at {origin[:100]}, not from this "
                                "server's own pages (a state-changing request must be same-origin)")
        chunked = "chunked" in request.headers.get("Transfer-Encoding", "").lower()
        if ((request.content_length or 0) > 0 or chunked) and not request.is_json:
            sent = request.mimetype or "no Content-Type"
            raise ApiError(415, f"send the body as JSON with Content-Type: application/json (this request sent "
                                f"{sent[:60]}); a form on another site cannot send that type without asking first")
        return None


# --------------------------------------------------------------------------- routes

def _register_routes(app: Flask, state: dict[str, Any]) -> None:
    mode = state["mode"]
    identity: Identity = state["identity"]
    where = state["placement"]

    @app.before_request
    def count_request():
        state["served"] = next(state["requests"])

    @app.after_request
    def stamp(response):
        response.headers["X-Served-By"] = state["name"]
        if request.endpoint in ("me", "cart_get", "cart_post", "login", "logout"):
            response.headers["Cache-Control"] = "private, no-store"
            response.vary.add(identity.vary)
        return response

    @app.get("/health")
    def health():
        return jsonify(server=state["name"], mode=mode, cart=state["cart"], sessions=identity.sessions(),
                       requests=state["served"])

    @app.get("/")
    def page():
        nonce = secrets.token_urlsafe(16)
        response = app.response_class(render_page(state["name"], mode, [b["item"] for b in CATALOG], nonce,
                                                  cart=state["cart"]), mimetype="text/html")
        response.headers["Content-Security-Policy"] = (
            f"default-src 'self'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; frame-ancestors 'self'")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/favicon.ico")
    def favicon():  # browsers ask for it; "no icon" is not an error
        return "", 204

    @app.get("/catalog")
    def catalog():
        response = jsonify(catalog=CATALOG)
        etag = hashlib.sha256(response.get_data()).hexdigest()[:16]
        response.set_etag(etag)
        response.headers["Cache-Control"] = "public, max-age=60"
        response = response.make_conditional(request)
        response.headers.pop("Date", None)  # make_conditional adds one; the HTTP server sends its own
        return response

    def current() -> tuple[str, dict[str, Any]]:
        """(user, state) for this request, the cart included wherever it lives, or a 401 (for plugins)."""
        who = identity.current()
        return who.user, {**who.data, "user": who.user, "cart": where.read(who)}

    def change_cart(change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> tuple[list, dict[str, Any]]:
        """Apply ``change`` atomically to the asking user's cart, wherever it lives (for plugins).

        Returns the new cart and the fields the reply must carry (``{"token": ...}`` when the cart
        lives in a token); raises :class:`ApiError` 401 like :func:`current`.
        """
        return where.change(identity.current(), change)

    state["current"] = current
    state["change_cart"] = change_cart

    @app.post("/login")
    def login():
        return identity.login(_user_from(_body()), where.fresh())

    @app.get("/me")
    def me():
        return jsonify(user=identity.current().user)

    @app.get("/cart")
    def cart_get():
        return jsonify(cart=where.read(identity.current()))

    @app.post("/cart")
    def cart_post():
        who = identity.current()
        item, qty = _line_from(_body())
        cart, reply = where.add(who, item, qty)
        return jsonify(cart=cart, **reply)

    @app.post("/logout")
    def logout():
        return identity.logout()
