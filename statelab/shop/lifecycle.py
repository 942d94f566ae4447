"""The token lifecycle as practised: short access tokens, refresh tokens kept on the server, JWKS, ``aud``/``iss``.

A "stateless" token design in production is rarely one long-lived token. The access token (a JWT
every server checks locally) lives seconds to minutes; a *refresh token*, an opaque random string
the server remembers, buys a new access token when it expires. That brings state back, on purpose:

* each refresh token belongs to a *family* (one login). A refresh token is used once: refreshing
  marks it used and hands out the next one of the family (rotation). If a used one comes back, two
  parties hold the family's tokens (a thief and the user), and the server cannot tell which is
  which: it ends the whole family, and both must log in again (reuse detection);
* logout ends the family, so no refresh token of that login works again (the access token still
  lives out its short ``ttl``: that is the price of not looking it up);
* access tokens name who they are for (``aud``) and who issued them (``iss``), and the servers
  refuse any other (RFC 8725, sections 3.8-3.10); the public keys are published as a JWKS document
  (``GET /.well-known/jwks.json``), and a verifier picks the key by the token's ``kid``.

:class:`RefreshFamilies` is the server-side store (only a hash of each refresh token is kept);
:func:`token_lifecycle` is a plugin adding the endpoints to a stateless shop. Every error is a JSON 4xx.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, jsonify, request

from .app import ApiError
from .tokens import Keyring, TokenError

#: Seconds an access token lives by default: short, because no server looks it up before it expires.
ACCESS_TTL = 30
#: Seconds a refresh token (and its family, the login) may be used by default.
REFRESH_TTL = 8 * 3600


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class _Refresh:
    user: str
    family: str
    expires: float
    used: bool = False


class RefreshFamilies:
    """Refresh tokens by family (one login): issue, rotate with reuse detection, end a family.

    Kept in this process's memory, so it is shared only by servers that are threads of this process: servers in
    other processes need it in a table or Redis (lab 02 task 4 keeps it in a SQLite file). Only the SHA-256 of each
    token is stored: a copy of the store does not hand out working tokens. ``lookups`` and ``writes``
    count the store operations, so a notebook can show what state the design brings back.
    """

    def __init__(self, ttl: float = REFRESH_TTL) -> None:
        if not 0 < ttl <= 90 * 86400:
            raise ValueError("ttl must be from 0 to 90 days, above 0")
        self.ttl = float(ttl)
        self._tokens: dict[str, _Refresh] = {}  # spent ones too, until their family expires: reuse is detected
        self._lock = threading.Lock()
        self._next_sweep = 0.0
        self.lookups = 0
        self.writes = 0

    def start(self, user: str) -> str:
        """A new login: a new family, and its first refresh token."""
        with self._lock:
            now = time.time()
            if now >= self._next_sweep:  # forget expired families, at most once a minute
                self._next_sweep = now + 60
                self._tokens = {d: r for d, r in self._tokens.items() if r.expires > now}
            return self._add(user, secrets.token_hex(8), now + self.ttl)

    def _add(self, user: str, family: str, expires: float) -> str:
        token = secrets.token_urlsafe(32)
        self._tokens[_digest(token)] = _Refresh(user, family, expires)
        self.writes += 1
        return token

    def rotate(self, token: object) -> tuple[str, str]:
        """Spend ``token``: return (user, the family's next refresh token), or raise :class:`TokenError`.

        A token used before ends its family: every refresh token of that login stops working.
        """
        if not isinstance(token, str) or not 20 <= len(token) <= 100:
            raise TokenError("no refresh token, or not one of ours")
        with self._lock:
            self.lookups += 1
            record = self._tokens.get(_digest(token))
            if record is None:  # never issued, or its family ended (all its tokens were deleted)
                raise TokenError("refresh token unknown or revoked: log in again")
            if record.expires <= time.time():
                raise TokenError("refresh token expired: log in again")
            if record.used:
                self._end(record.family)
                raise TokenError("refresh token reused: someone else holds this login's tokens, so every token of "
                                 "the login is revoked; log in again")
            record.used = True
            self.writes += 1
            return record.user, self._add(record.user, record.family, record.expires)

    def _end(self, family: str) -> int:
        gone = [d for d, r in self._tokens.items() if r.family == family]
        for d in gone:
            del self._tokens[d]
        self.writes += 1
        return len(gone)

    def end(self, token: object) -> bool:
        """Logout: end the family of ``token``; True if it was a live family."""
        if not isinstance(token, str):
            return False
        with self._lock:
            self.lookups += 1
            record = self._tokens.get(_digest(token))
            if record is None:
                return False
            self._end(record.family)
            return True

    def stored_bytes(self) -> int:
        """What the server keeps for the live refresh tokens: digest, user, family, expiry and flag, as JSON."""
        with self._lock:
            return sum(len(d) + len(json.dumps([r.user, r.family, r.expires, r.used])) for d, r in self._tokens.items())

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)


def _json_field(name: str) -> str:
    body = request.get_json(silent=True)
    value = body.get(name) if isinstance(body, dict) else None
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"send a JSON object with {name!r}, a string")
    return value


def token_lifecycle(families: RefreshFamilies, *, audience: str = "statelab-shop",
                    issuer: str = "https://auth.statelab.invalid", access_ttl: float = ACCESS_TTL
                    ) -> Callable[[Flask], None]:
    """A plugin for a stateless shop: short access tokens (``aud``, ``iss``), refresh families, JWKS.

    ``POST /auth/login`` ``{"user"}`` and ``POST /auth/refresh`` ``{"refresh_token"}`` answer
    ``{"access_token", "refresh_token", "expires_in"}``; ``POST /auth/logout`` ``{"refresh_token"}`` ends
    the family (204); ``GET /auth/me`` checks an access token's signature, expiry, ``aud`` and ``iss``
    (no lookup); ``GET /.well-known/jwks.json`` publishes the public keys (RS256 or ES256 keyrings).
    """
    if not 1 <= access_ttl <= 3600:
        raise ValueError("access_ttl must be from 1 to 3600 seconds")

    def plugin(app: Flask) -> None:
        state = app.extensions["statelab"]
        keyring: Keyring | None = state.get("keyring")
        if keyring is None:
            raise ValueError("the token lifecycle needs a stateless server (its keyring signs the access tokens)")

        def pair(user: str, refresh: str) -> Any:
            access = keyring.issue(user, access_ttl, aud=audience, iss=issuer)
            response = jsonify(access_token=access, refresh_token=refresh, expires_in=int(access_ttl),
                               token_type="Bearer")
            response.headers["Cache-Control"] = "no-store"
            return response

        @app.post("/auth/login")
        def lifecycle_login():
            user = _json_field("user")
            if len(user) > 64:
                raise ApiError(400, "a user name is 1-64 characters")
            return pair(user, families.start(user))

        @app.post("/auth/refresh")
        def lifecycle_refresh():
            try:
                user, refresh = families.rotate(_json_field("refresh_token"))
            except TokenError as e:
                raise ApiError(401, str(e)) from None
            return pair(user, refresh)

        @app.post("/auth/logout")
        def lifecycle_logout():
            families.end(_json_field("refresh_token"))
            return "", 204

        @app.get("/auth/me")
        def lifecycle_me():
            token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            try:
                claims = keyring.verify(token, audience=audience, issuer=issuer)
            except TokenError as e:
                raise ApiError(401, str(e)) from None
            return jsonify(user=claims["sub"], aud=claims["aud"], iss=claims["iss"], exp=claims["exp"])

        @app.get("/.well-known/jwks.json")
        def lifecycle_jwks():
            try:
                document = keyring.jwks()
            except ValueError as e:
                raise ApiError(404, str(e)) from None
            response = jsonify(document)
            response.headers["Cache-Control"] = "public, max-age=300"
            return response

    return plugin
