"""Who is asking: the first choice of a design, one class per ``mode``.

``SessionId``   (``mode="stateful"``)  an opaque random id in an HttpOnly cookie; the server keeps
                the session (the user, and whatever else is put there) in a session store.
``BearerToken`` (``mode="stateless"``) a JWT the client sends as ``Authorization: Bearer``; the
                server keeps nothing but the keys that sign and check it.
``SignedCookie`` (``mode="cookie"``)   Flask's signed-cookie session: the state itself in a cookie the
                user can read but not change; the server keeps only the secret key.

Each one logs a user in, says who is asking (or raises a 401), changes the state that goes with the
login, and logs out. The views never ask which one they have. Where the *cart* lives is the other
choice (:mod:`statelab.shop.carts`): an identity's own state is only one of the places it can go.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Response, current_app, g, jsonify, request, session
from werkzeug.http import dump_cookie

from .proxy import cookie_path
from .rules import ApiError
from .sessions import SessionStore
from .tokens import MAX_TOKEN, Keyring, TokenError

State = dict[str, Any]
Change = Callable[[State], State]
MAX_SID = 256  # longer "ids" are not ours: refused unread


@dataclass
class Who:
    """The user asking, and the state their credential stands for (session record, token claims or cookie)."""

    user: str
    data: State = field(default_factory=dict)
    sid: str | None = None  # the session id, for a stateful server


class Identity:
    """How one server knows who is asking. Subclasses fill in the five operations."""

    mode = "?"
    home = "?"          # the cart= name that means "with me": "session" or "token"
    carrier = "?"       # what holds the state, in words: "session", "token", "signed cookie"
    vary = "Cookie"     # the request header an answer about the user depends on

    def login(self, user: str, fresh: State) -> Response:
        raise NotImplementedError

    def current(self) -> Who:
        """The user asking, or :class:`ApiError` 401 saying why not."""
        raise NotImplementedError

    def change(self, who: Who, change: Change) -> tuple[State, State]:
        """Apply ``change`` to the login's state: (new state, fields for the reply)."""
        raise NotImplementedError

    def logout(self) -> Response:
        raise NotImplementedError

    def sessions(self) -> int:
        """Logins this server keeps state for (0 when the client holds it all)."""
        return 0


class SessionId(Identity):
    """A random session id in a cookie; the session itself in ``store``, idle for at most ``ttl`` seconds.

    With ``max_age``, a session also ends ``max_age`` seconds after its login however busy it is (an
    absolute timeout, beside the idle one): a stolen session id that the thief keeps using does not live
    for ever. The login time is kept in the session (``auth_time``) only when ``max_age`` is set.
    """

    mode, home, carrier = "stateful", "session", "session"

    def __init__(self, store: SessionStore, cookie_name: str, ttl: float, max_age: float | None = None) -> None:
        if max_age is not None and not max_age > 0:  # "not >": NaN is refused too
            raise ValueError("session_max_age must be a number of seconds above 0 (or None: no absolute timeout)")
        self.store = store
        self.cookie_name = cookie_name
        self.ttl = ttl
        self.max_age = max_age

    def _sid(self) -> str:
        sid = request.cookies.get(self.cookie_name, "")
        return sid if 0 < len(sid) <= MAX_SID else ""

    def login(self, user: str, fresh: State) -> Response:
        old = self._sid()
        if old:
            self.store.delete(old)  # fixation: never keep an id that existed before login
        data = {"user": user, **fresh}
        if self.max_age is not None:
            data["auth_time"] = time.time()
        sid = self.store.create(data, self.ttl)
        response = jsonify(user=user)
        response.set_cookie(self.cookie_name, sid, httponly=True, samesite="Lax", path=cookie_path(request.headers))
        return response

    def current(self) -> Who:
        sid = self._sid()
        data = self.store.get(sid) if sid else None
        if data is None:
            raise ApiError(401, "not logged in: no valid session cookie (log in first)")
        if self.max_age is not None:
            age = time.time() - data.get("auth_time", 0.0) if isinstance(data.get("auth_time"), float) else math.inf
            if age > self.max_age:
                self.store.delete(sid)
                raise ApiError(401, f"your session reached its maximum age ({self.max_age:g} s since login, however "
                                    "busy): log in again")
        g.sid = sid
        return Who(data["user"], data, sid)

    def change(self, who: Who, change: Change) -> tuple[State, State]:
        new = self.store.update(who.sid or "", change)
        if new is None:
            raise ApiError(401, "your session ended before the change was saved (log in again)")
        return new, {}

    def logout(self) -> Response:
        sid = self._sid()
        response = jsonify(logged_out=bool(sid) and self.store.delete(sid))
        response.delete_cookie(self.cookie_name, path=cookie_path(request.headers), httponly=True, samesite="Lax")
        return response

    def sessions(self) -> int:
        return self.store.count()


class BearerToken(Identity):
    """A JWT signed with ``keyring``: valid ``ttl`` seconds, and never past ``max_age`` after the login."""

    mode, home, carrier = "stateless", "token", "token"
    vary = "Authorization"

    def __init__(self, keyring: Keyring, ttl: float, max_age: float | None = None) -> None:
        if not ttl >= 1 or not (max_age is None or max_age >= 1):  # "not >=": NaN is refused too
            raise ValueError("token_ttl and token_max_age must be at least 1 second: a token's exp is in whole "
                             "seconds, so a shorter lifetime would issue tokens that are expired when they leave")
        self.keyring = keyring
        self.ttl = ttl
        self.max_age = ttl if max_age is None else max_age

    def login(self, user: str, fresh: State) -> Response:
        # max_age caps the login itself too: a first token living ttl would outlive it when max_age < ttl
        return jsonify(user=user, token=self.keyring.issue(user, min(self.ttl, self.max_age), **fresh))

    def current(self) -> Who:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            raise ApiError(401, "not logged in: send Authorization: Bearer <token>")
        try:
            claims = self.keyring.verify(auth[7:].strip())
        except TokenError as e:
            raise ApiError(401, str(e)) from None
        return Who(claims["sub"], {**claims, "user": claims["sub"]})

    def change(self, who: Who, change: Change) -> tuple[State, State]:
        new = change(dict(who.data))
        try:
            token = self.keyring.renew(new, self.ttl, max_age=self.max_age)
        except TokenError as e:  # the login is over: a 401, never a 200 carrying a token that is born expired
            raise ApiError(401, str(e)) from None
        if len(token) > MAX_TOKEN:
            raise ApiError(413, f"refused: the new token would be {len(token)} characters, more than servers "
                                f"accept ({MAX_TOKEN}); your cart is unchanged and your token still works "
                                "(a cart this big belongs in a database: cart='db')")
        return new, {"token": token}

    def logout(self) -> Response:
        # Nothing to delete: the server never stored the token. It stays valid until exp.
        return jsonify(logged_out=True, note="the server keeps no state: the token stays valid until it expires")


class SignedCookie(Identity):
    """Flask's signed cookie session, carrying its own absolute expiry (``exp``, ``ttl`` after login)."""

    mode, home, carrier = "cookie", "token", "signed cookie"

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl

    def login(self, user: str, fresh: State) -> Response:
        session.clear()
        session.update({"user": user, **fresh, "exp": round(time.time() + self.ttl, 3)})
        return jsonify(user=user)

    def current(self) -> Who:
        user, exp = session.get("user"), session.get("exp")
        if not isinstance(user, str):
            raise ApiError(401, "not logged in: no valid signed session cookie (log in first)")
        if type(exp) not in (int, float) or not math.isfinite(exp) or exp > time.time() + self.ttl + 1:
            # NaN compares false with everything, so "exp <= now" alone would let it in for ever
            raise ApiError(401, "your signed session cookie has no usable expiry (log in again)")
        if exp <= time.time():
            raise ApiError(401, "your signed session cookie has expired (log in again)")
        return Who(user, dict(session))

    def change(self, who: Who, change: Change) -> tuple[State, State]:
        new = change(dict(who.data))
        size = cookie_bytes(new)
        limit = current_app.config["MAX_COOKIE_SIZE"]
        if size > limit:
            raise ApiError(413, f"refused: the signed cookie would be {size} bytes, more than browsers keep "
                                f"({limit}); your cart is unchanged and your cookie still works "
                                "(a cart this big belongs in a database: cart='db')")
        session.clear()
        session.update(new)
        return new, {}

    def logout(self) -> Response:
        session.clear()
        return jsonify(logged_out=True)


def cookie_bytes(data: State) -> int:
    """Size of the ``Set-Cookie`` value that would carry ``data`` as this app's signed session."""
    app = current_app
    value = app.session_interface.get_signing_serializer(app).dumps(dict(data))
    return len(dump_cookie(app.config["SESSION_COOKIE_NAME"], value, path=cookie_path(request.headers),
                           httponly=True, samesite="Lax", max_size=0))
