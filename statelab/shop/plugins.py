"""Reusable app plugins: small additions to a bookshop server, passed as ``plugins=[...]``.

A plugin is called as ``plugin(app)`` after the routes exist (see :func:`statelab.shop.app.create_app`);
it may add routes or request hooks, and asks ``app.extensions["statelab"]["current"]()`` who is
asking. Lessons and experiments share the ones here instead of keeping copies.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, jsonify, request

from .app import NAME_RE

#: The per-user answers :func:`personal_headers` rewrites.
PERSONAL_PATHS = ("/me", "/cart")


def personal_headers(policy: dict[str, str]) -> Callable[[Any], None]:
    """A plugin that rewrites the caching headers of ``GET /me`` and ``GET /cart`` answers.

    ``policy["personal"]`` is read at every request, so one running server can play each set-up:
    ``"private"`` leaves the app's ``Cache-Control: private, no-store``; ``"public+vary"`` makes it
    ``public, max-age=60`` and keeps ``Vary``; ``"public"`` also drops ``Vary`` (the classic bug).
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
                drop = {"cache-control"} | ({"vary"} if mode == "public" else set())
                headers = [(k, v) for k, v in headers if k.lower() not in drop]
                headers.append(("Cache-Control", "public, max-age=60"))
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
    if state["mode"] != "stateful":
        raise ValueError("login_keeping_the_id is for stateful servers (it keeps a server-side session id)")

    @app.post("/login-naive")
    def login_naive():
        data = request.get_json(force=True, silent=True)
        user = data.get("user") if isinstance(data, dict) else None
        if not isinstance(user, str) or not NAME_RE.fullmatch(user):
            return jsonify(error="user must be 1-64 characters: letters, digits, '.', '_' or '-'"), 400
        store, name = state["store"], state["cookie_name"]
        old = request.cookies.get(name, "")
        fresh = {"user": user, "cart": []}
        if 0 < len(old) <= 256 and store.update(old, lambda _: fresh) is not None:
            sid = old  # the bug: the session that existed before login now belongs to `user`
        else:
            sid = store.create(fresh, state["session_ttl"])
        response = jsonify(user=user)
        response.set_cookie(name, sid, httponly=True, samesite="Lax", path="/")
        return response
