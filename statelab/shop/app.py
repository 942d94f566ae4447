"""The demo bookshop: one Flask app factory, three ways to remember a user.

``mode="stateful"``  the server keeps a session (user, cart) in a :mod:`~statelab.shop.sessions`
                     store; the browser holds only an opaque, random id in the ``sid`` cookie.
``mode="stateless"`` the server keeps nothing per user; the client holds a JWT that carries
                     the user *and the cart*, signed with the cluster's :class:`~statelab.shop.tokens.Keyring`.
``mode="cookie"``    Flask's own signed-cookie session: stateless on the server too, with the
                     state in a cookie the user can read but not change.

Every mode speaks the same HTTP contract (DESIGN.md), so a notebook can swap one for the
other and measure only the difference that matters. Every error is JSON; bad input is a 4xx.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, g, jsonify, request, session
from werkzeug.exceptions import HTTPException

from ..rawhttp import MAX_BODY
from .page import render as render_page
from .proxy import ProxyAwareSessionInterface, cookie_path
from .sessions import MemoryStore, SessionStore
from .tokens import Keyring, TokenError

MODES = ("stateful", "stateless", "cookie")
NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")  # fullmatch: "$" would let "alice\n" in
ITEM_RE = re.compile(r"[A-Za-z0-9._ -]{1,64}")
MAX_CART_LINES = 200

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


class ApiError(Exception):
    """Raised inside a view to answer ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def create_app(
    mode: str = "stateful",
    *,
    name: str = "server",
    store: SessionStore | None = None,
    keyring: Keyring | None = None,
    secret_key: bytes | None = None,
    session_ttl: float = 1800,
    token_ttl: float = 900,
    cookie_name: str = "sid",
    plugins: Iterable[Plugin] = (),
) -> Flask:
    """Build the bookshop app for one server.

    ``store`` is where stateful sessions live (a fresh :class:`MemoryStore` when omitted);
    ``keyring`` signs and checks tokens in stateless mode (a fresh one when omitted: pass the
    same keyring to every server of a cluster so they accept each other's tokens).

    ``plugins`` are how lessons and labs extend a server without editing this package: each is
    called as ``plugin(app)`` after the routes exist, and may add routes or request hooks.
    ``app.extensions["statelab"]`` gives them the server's parts: ``name``, ``mode``, ``store``,
    ``keyring``, ``session_ttl``, ``token_ttl``, ``cookie_name``, and ``current()``, which
    returns ``(user, state)`` for the request being answered (session data, or token claims
    with the cart) or raises :class:`ApiError` 401, exactly as the built-in routes do. In
    stateful mode it also sets ``flask.g.sid``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    app = Flask(f"statelab.{name}")
    app.session_interface = ProxyAwareSessionInterface()  # cookie Path=/ unless behind Jupyter's proxy
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY,
        SECRET_KEY=secret_key or secrets.token_bytes(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME=f"{cookie_name}-signed" if mode == "cookie" else "session",
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    state = {
        "name": name,
        "mode": mode,
        "store": store if store is not None else (MemoryStore() if mode == "stateful" else None),
        "keyring": keyring if keyring is not None else (Keyring() if mode == "stateless" else None),
        "session_ttl": float(session_ttl),
        "token_ttl": float(token_ttl),
        "cookie_name": cookie_name,
        "requests": itertools.count(1),
        "served": 0,
    }
    app.extensions["statelab"] = state
    _register_errors(app)
    _register_routes(app, state)
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
        data = request.get_json(force=True, silent=True)
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


def add_line(cart: list[dict[str, Any]], item: str, qty: int) -> list[dict[str, Any]]:
    """Return ``cart`` with ``qty`` more of ``item`` (one line per item)."""
    cart = [dict(line) for line in cart]
    for line in cart:
        if line["item"] == item:
            line["qty"] += qty
            return cart
    if len(cart) >= MAX_CART_LINES:
        raise ApiError(400, f"cart is full ({MAX_CART_LINES} different items)")
    cart.append({"item": item, "qty": qty})
    return cart


# --------------------------------------------------------------------------- errors

def _register_errors(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(e: ApiError):
        return jsonify(error=e.message), e.status

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


# --------------------------------------------------------------------------- routes

def _register_routes(app: Flask, state: dict[str, Any]) -> None:
    mode = state["mode"]
    cookie_name = state["cookie_name"]

    @app.before_request
    def count_request():
        state["served"] = next(state["requests"])

    @app.after_request
    def stamp(response):
        response.headers["X-Served-By"] = state["name"]
        if request.endpoint in ("me", "cart_get", "cart_post", "login", "logout"):
            response.headers["Cache-Control"] = "private, no-store"
            response.vary.add("Authorization" if mode == "stateless" else "Cookie")
        return response

    @app.get("/health")
    def health():
        store = state["store"]
        return jsonify(server=state["name"], mode=mode,
                       sessions=store.count() if store is not None else 0,
                       requests=state["served"])

    @app.get("/")
    def page():
        nonce = secrets.token_urlsafe(16)
        response = app.response_class(render_page(state["name"], mode, [b["item"] for b in CATALOG], nonce),
                                      mimetype="text/html")
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

    # --- the three ways to know who is asking --------------------------------------------
    def current() -> tuple[str, dict[str, Any]]:
        """(user, state) for this request, or a 401."""
        if mode == "stateful":
            sid = request.cookies.get(cookie_name, "")
            data = state["store"].get(sid) if 0 < len(sid) <= 256 else None
            if data is None:
                raise ApiError(401, "not logged in: no valid session cookie (log in first)")
            g.sid = sid
            return data["user"], data
        if mode == "stateless":
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer "):
                raise ApiError(401, "not logged in: send Authorization: Bearer <token>")
            try:
                claims = state["keyring"].verify(auth[7:].strip())
            except TokenError as e:
                raise ApiError(401, str(e)) from None
            cart = claims.get("cart", [])
            if not isinstance(cart, list):
                raise ApiError(401, "token cart claim is malformed")
            return claims["sub"], {**claims, "user": claims["sub"], "cart": cart}
        user = session.get("user")
        if not isinstance(user, str):
            raise ApiError(401, "not logged in: no valid signed session cookie (log in first)")
        return user, {"user": user, "cart": session.get("cart", [])}

    state["current"] = current  # for plugins: who is asking, in any mode (see create_app)

    def token_for(user: str, cart: list[dict[str, Any]]) -> str:
        return state["keyring"].issue(user, state["token_ttl"], cart=cart)

    @app.post("/login")
    def login():
        user = _user_from(_body())
        if mode == "stateful":
            old = request.cookies.get(cookie_name)
            if old and len(old) <= 256:
                state["store"].delete(old)  # fixation: never keep an id that existed before login
            sid = state["store"].create({"user": user, "cart": []}, state["session_ttl"])
            response = jsonify(user=user)
            response.set_cookie(cookie_name, sid, httponly=True, samesite="Lax", path=cookie_path(request.headers))
            return response
        if mode == "stateless":
            return jsonify(user=user, token=token_for(user, []))
        session.clear()
        session["user"], session["cart"] = user, []
        return jsonify(user=user)

    @app.get("/me")
    def me():
        user, _ = current()
        return jsonify(user=user)

    @app.get("/cart")
    def cart_get():
        _, data = current()
        return jsonify(cart=data["cart"])

    @app.post("/cart")
    def cart_post():
        user, data = current()
        item, qty = _line_from(_body())
        if mode == "stateful":
            new = state["store"].update(g.sid, lambda s: {**s, "cart": add_line(s["cart"], item, qty)})
            if new is None:
                raise ApiError(401, "session ended while adding to the cart (log in again)")
            return jsonify(cart=new["cart"])
        cart = add_line(data["cart"], item, qty)
        if mode == "stateless":
            return jsonify(cart=cart, token=token_for(user, cart))
        session["cart"] = cart
        return jsonify(cart=cart)

    @app.post("/logout")
    def logout():
        if mode == "stateful":
            sid = request.cookies.get(cookie_name, "")
            ended = bool(sid) and len(sid) <= 256 and state["store"].delete(sid)
            response = jsonify(logged_out=ended)
            response.delete_cookie(cookie_name, path=cookie_path(request.headers), httponly=True, samesite="Lax")
            return response
        if mode == "stateless":
            # Nothing to delete: the server never stored the token. It stays valid until exp.
            return jsonify(logged_out=True,
                           note="the server keeps no state: the token stays valid until it expires")
        session.clear()
        return jsonify(logged_out=True)
