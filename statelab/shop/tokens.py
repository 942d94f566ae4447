"""JSON Web Tokens with PyJWT: issue, verify, rotate keys, and inspect without trusting.

A stateless server keeps nothing about its clients; it keeps *keys*. A :class:`Keyring`
holds them, each under a key id (``kid``) that travels in the token header, so that a
cluster can rotate to a new signing key while tokens signed with the old one still verify
for a while. Verification always pins the algorithm: the ``alg`` a token claims for itself
is never what decides how it is checked.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ALGORITHMS = ("HS256", "RS256", "ES256")
# Characters: a longer token is refused unread, and the server never issues one (a write that would is a 413).
# It must fit every header limit on the way: gunicorn's 8,190 bytes per header line ("Authorization: Bearer "
# and CRLF included), HAProxy's 15 KiB for a whole request head, werkzeug's 64 KiB line. Above it a user
# would be locked out (431 on every request) instead of being told at the write.
MAX_TOKEN = 8_000
REGISTERED = ("sub", "iat", "exp", "jti", "auth_time")  # claims a renewal keeps or sets, never copies blindly


class TokenError(Exception):
    """A token that must be refused; the message says why in plain words."""


def _new_key(algorithm: str) -> tuple[Any, Any]:
    """A (signing key, verification key) pair generated for this run only."""
    if algorithm == "HS256":
        secret = secrets.token_bytes(32)
        return secret, secret
    if algorithm == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return private, private.public_key()
    if algorithm == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        return private, private.public_key()
    raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")


class Keyring:
    """The signing keys a cluster shares, by key id.

    ``rotate()`` makes a new key current and keeps the old ones for verification, until
    ``retire(kid)`` drops one: tokens signed with a retired key stop verifying.
    """

    def __init__(self, algorithm: str = "HS256") -> None:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")
        self.algorithm = algorithm
        self._keys: dict[str, tuple[Any, Any]] = {}
        self._serial = 0
        self.current_kid = self.rotate()

    @classmethod
    def from_secret(cls, secret: bytes, kid: str = "shared") -> Keyring:
        """An HS256 keyring whose one key is ``secret`` (32+ bytes): how separate processes share a key,
        read from configuration (an environment variable, a secrets manager) instead of made at start."""
        if not isinstance(secret, bytes) or len(secret) < 32:
            raise ValueError("the shared secret must be at least 32 bytes")
        ring = cls("HS256")
        ring._keys = {kid: (secret, secret)}
        ring.current_kid = kid
        return ring

    def rotate(self) -> str:
        """Add a fresh key, make it the one that signs, and return its kid."""
        self._serial += 1
        kid = f"k{self._serial}-{secrets.token_hex(3)}"
        self._keys[kid] = _new_key(self.algorithm)
        self.current_kid = kid
        return kid

    def retire(self, kid: str) -> None:
        """Stop accepting tokens signed with ``kid`` (the current key cannot be retired)."""
        if kid == self.current_kid:
            raise ValueError("rotate() to a new key before retiring the current one")
        self._keys.pop(kid, None)

    @property
    def kids(self) -> list[str]:
        """Key ids that still verify, oldest first."""
        return list(self._keys)

    def signing_key(self) -> Any:
        return self._keys[self.current_kid][0]

    def _current(self) -> tuple[str, Any]:
        """(kid, signing key), read together: a rotation between two reads would sign with one key
        and label the token with another, and the token would never verify."""
        kid = self.current_kid
        return kid, self._keys[kid][0]

    def verification_key(self, kid: object) -> Any | None:
        if not isinstance(kid, str):
            return None
        pair = self._keys.get(kid)
        return None if pair is None else pair[1]

    def issue(self, sub: str, ttl: float, **claims: Any) -> str:
        """Sign a token for ``sub`` valid for ``ttl`` seconds, with extra claims (e.g. the cart).

        ``auth_time`` (when the user logged in) is now unless given; ``jti`` is fresh unless given.
        """
        now = int(time.time())
        payload = {"sub": sub, "iat": now, "exp": now + int(ttl), "jti": secrets.token_hex(8),
                   "auth_time": now, **claims}
        kid, key = self._current()
        return jwt.encode(payload, key, algorithm=self.algorithm, headers={"kid": kid})

    def renew(self, claims: dict[str, Any], ttl: float, *, max_age: float | None = None, **changes: Any) -> str:
        """Re-sign a verified token's ``claims`` with ``changes`` (e.g. a new cart), for the same login.

        The renewed token keeps ``sub``, ``jti`` and ``auth_time``: it is the same login, so a deny list
        that revoked the login's ``jti`` refuses it too. Its ``exp`` is at most ``ttl`` from now and never
        later than ``auth_time + max_age`` (``max_age`` defaults to ``ttl``): writing to the cart does
        not keep a stolen token alive past the lifetime of the login it came from.
        """
        now = int(time.time())
        auth_time = claims.get("auth_time", claims.get("iat"))
        if not _is_seconds(auth_time):  # never "now": that would restart the login's lifetime
            raise TokenError("token has no usable auth_time (when you logged in): log in again")
        cap = auth_time + int(ttl if max_age is None else max_age)
        exp = min(now + int(ttl), cap)
        if exp <= time.time():  # the login is over: a renewal must not hand out a token that is born expired
            raise TokenError(f"your login is older than its maximum age ({int(cap - auth_time)} s): log in again")
        kept = {k: v for k, v in claims.items() if k not in REGISTERED and k != "user"}
        return self.issue(claims["sub"], ttl, **{**kept, **changes, "jti": claims.get("jti") or secrets.token_hex(8),
                                                 "auth_time": auth_time, "exp": exp})

    def jwks(self) -> dict[str, Any]:
        """The public verification keys as a JWKS document (RFC 7517), one entry per ``kid`` still accepted.

        A verifier that fetches this document picks the key by the ``kid`` in a token's header, so keys can
        rotate without anyone copying them by hand. HS256 keys are secrets that verify *and* sign: they are
        never published, so an HS256 keyring has no JWKS (a ``ValueError`` says so).
        """
        if self.algorithm == "HS256":
            raise ValueError("HS256 keys sign as well as verify: they are never published (use RS256 or ES256)")
        algorithm = jwt.algorithms.get_default_algorithms()[self.algorithm]
        keys = []
        for kid, (_, public) in list(self._keys.items()):
            jwk = json.loads(algorithm.to_jwk(public))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": self.algorithm})
        return {"keys": keys}

    def verify(self, token: object, *, audience: str | None = None, issuer: str | None = None) -> dict[str, Any]:
        """Return the claims of a valid token, or raise :class:`TokenError` saying why not.

        With ``audience`` and ``issuer`` (RFC 8725, sections 3.8-3.10), a token must also name this service in
        ``aud`` and its issuer in ``iss``: a token that another service of the same key holder was given, or
        that another issuer signed with a key this one also trusts, is refused though its signature is good.
        """
        if not isinstance(token, str) or not token:
            raise TokenError("no token")
        if len(token) > MAX_TOKEN:
            raise TokenError("token is too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("token is malformed: expected header.payload.signature") from None
        if header.get("alg") != self.algorithm:
            raise TokenError(f"token algorithm {header.get('alg')!r} is not accepted (only {self.algorithm})")
        key = self.verification_key(header.get("kid"))
        if key is None:
            raise TokenError("token was signed with an unknown or retired key (kid)")
        try:
            required = ["sub", "iat", "exp", "jti"] + (["aud"] if audience else []) + (["iss"] if issuer else [])
            claims = jwt.decode(token, key, algorithms=[self.algorithm], audience=audience, issuer=issuer,
                                options={"require": required})
        except jwt.ExpiredSignatureError:
            raise TokenError("token has expired") from None
        except jwt.InvalidAudienceError:
            raise TokenError(f"token is for another audience (aud), not {audience!r}" if audience else
                             "token names an audience (aud), and this server expects none") from None
        except jwt.InvalidIssuerError:
            raise TokenError(f"token was issued by another issuer (iss), not {issuer!r}") from None
        except jwt.InvalidSignatureError:
            raise TokenError("token signature is invalid: it was altered or signed with another key") from None
        except jwt.PyJWTError as e:
            raise TokenError(f"token is invalid: {e}") from None
        _check_claim_types(claims)
        return claims


#: The latest NumericDate a claim may hold: the year 5138. Far above any real expiry, far below what
#: breaks arithmetic (``1e300``, ``10**300``).
MAX_SECONDS = 10**11


def _is_seconds(value: object) -> bool:
    """Whether ``value`` is a NumericDate as this keyring writes one: a whole number of seconds, in range."""
    return type(value) is int and 0 <= value < MAX_SECONDS


def _check_claim_types(claims: dict[str, Any]) -> None:
    """Refuse claims of a type this keyring never writes, even under a valid signature.

    Only our servers hold the key, but a server with a bug, an older version, or anyone who got the key can
    sign anything. PyJWT checks that ``exp`` and ``iat`` convert to a number, so ``"1796533018"`` or
    ``1e300`` would pass it; and a non-integer ``auth_time`` would reset the cap on a login's age.
    """
    for name in ("exp", "iat", "auth_time"):
        if name in claims and not _is_seconds(claims[name]):
            raise TokenError(f"token is invalid: the {name} claim must be a whole number of seconds")
    for name in ("sub", "jti"):
        if not isinstance(claims[name], str) or not claims[name]:
            raise TokenError(f"token is invalid: the {name} claim must be a non-empty string")


@dataclass
class TokenReport:
    """What :func:`inspect_token` found. ``header`` and ``claims`` are decoded, not trusted."""

    token: str
    header: dict[str, Any] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)
    signature_valid: bool | None = None
    expired: bool = False
    expires_in: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Well-formed, signature checked and valid, and not expired."""
        return self.signature_valid is True and not self.expired and not self.problems

    def _repr_html_(self) -> str:
        from html import escape

        def block(d: dict[str, Any]) -> str:
            return escape(json.dumps(d, indent=2, default=str))

        sig = {True: "valid", False: "INVALID", None: "not checked (no key given)"}[self.signature_valid]
        probs = "".join(f"<li>{escape(p)}</li>" for p in self.problems) or "<li>none</li>"
        return (f"<b>header</b><pre>{block(self.header)}</pre><b>claims</b><pre>{block(self.claims)}</pre>"
                f"<b>signature:</b> {sig}; <b>expired:</b> {self.expired}<br><b>problems:</b><ul>{probs}</ul>")


def _b64json(part: str) -> dict[str, Any]:
    raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _describe_age(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def inspect_token(token: object, key: Any = None, *, now: float | None = None) -> TokenReport:
    """Decode a JWT for a human, and verify it when given a key. Never raises.

    ``key`` may be a :class:`Keyring`, an HMAC secret (``bytes`` or ``str``), or a public
    key. The header and claims are shown as the token states them, *untrusted*: anyone can
    write anything there. Only ``signature_valid is True`` says the server's key signed it.
    """
    report = TokenReport(token="<not inspected>")
    try:
        is_str = issubclass(type(token), str)  # type(), not isinstance(): that would ask the object's __class__
        if is_str:
            token = str.__str__(token)  # the characters as a plain str: a subclass's own methods are not called
        report.token = token if is_str else _shown(token)
        _inspect(report, token, key, time.time() if now is None else now)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - see below
        # The promise is "never raises": a bug here, or anything a hostile object's __repr__, __eq__ or
        # __class__ raises, becomes a finding. That includes SystemExit and other BaseExceptions, which
        # such code can raise as easily as a ValueError: they come from the object, not from the learner.
        # KeyboardInterrupt is the one exception: it is the learner (or Jupyter's stop button) asking to
        # stop, and a tool that swallowed it could not be interrupted.
        report.problems.append(f"could not inspect this token ({_shown(e, _exception_text)})")
    return report


def _exception_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def _shown(obj: object, show: Any = repr, limit: int = 200) -> str:
    """``repr(obj)`` (or ``str``), cut to ``limit`` characters, for any object, even one whose repr raises
    (anything but KeyboardInterrupt: see :func:`inspect_token`)."""
    try:
        text = show(obj)
        if type(text) is not str:
            raise TypeError
    except KeyboardInterrupt:
        raise
    except BaseException:  # noqa: BLE001 - a hostile repr may raise SystemExit too
        try:
            text = f"<{type(obj).__name__} object that cannot be shown>"
            if type(text) is not str:
                raise TypeError
        except KeyboardInterrupt:
            raise
        except BaseException:  # noqa: BLE001
            text = "<an object that cannot be shown>"
    return text if len(text) <= limit else text[:limit] + "..."


def _inspect(report: TokenReport, token: object, key: Any, now: float) -> None:
    if not isinstance(token, str) or not token.strip():
        report.problems.append("not a token: expected a string like header.payload.signature")
        return
    token = token.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    parts = token.split(".")
    if len(parts) != 3:
        report.problems.append(f"a JWT has 3 dot-separated parts; this has {len(parts)}")
        return
    for name, part, target in (("header", parts[0], "header"), ("claims", parts[1], "claims")):
        try:
            setattr(report, target, _b64json(part))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            report.problems.append(f"the {name} part is not base64url-encoded JSON")
    if report.problems:
        return

    alg = report.header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        report.problems.append("alg is 'none' or missing: the token is unsigned; a server must refuse it")
    elif alg not in ALGORITHMS:
        report.problems.append(f"alg {alg!r} is not one statelab accepts ({', '.join(ALGORITHMS)})")

    exp = report.claims.get("exp")
    if exp is None:
        report.problems.append("no exp claim: this token never expires")
    elif isinstance(exp, (int, float)) and not isinstance(exp, bool) and abs(exp) < 1e15:  # finite, sane
        report.expires_in = float(exp) - now
        report.expired = report.expires_in <= 0
        if report.expired:
            report.problems.append(f"expired {_describe_age(report.expires_in)} ago")
    else:
        report.problems.append("exp claim is not a usable number of seconds")

    if key is None:
        return
    report.signature_valid = _signature_valid(token, report.header, key)
    if report.signature_valid is False:
        report.problems.append("signature does not match the key: altered, or signed with another key")


def _signature_valid(token: str, header: dict[str, Any], key: Any) -> bool:
    if isinstance(key, Keyring):
        pinned = [key.algorithm]
        key = key.verification_key(header.get("kid"))
        if key is None:
            return False
    elif isinstance(key, (bytes, str)):
        pinned = ["HS256"]
    elif isinstance(key, rsa.RSAPublicKey):
        pinned = ["RS256"]
    elif isinstance(key, ec.EllipticCurvePublicKey):
        pinned = ["ES256"]
    else:
        return False
    if header.get("alg") not in pinned:
        return False
    try:
        jwt.decode(token, key, algorithms=pinned, options={"verify_exp": False, "verify_aud": False,
                                                            "verify_iat": False, "verify_nbf": False})
        return True
    except jwt.InvalidSignatureError:
        return False
    except jwt.PyJWTError:
        return False
