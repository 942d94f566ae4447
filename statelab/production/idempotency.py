"""Idempotency keys in Valkey: what every server of a cluster remembers per ``Idempotency-Key``, kept where
they all reach it over the network, as production keeps them (Redis, or a table), not in one process.

:class:`RedisIdempotencyKeys` has the interface of :class:`statelab.shop.plugins.IdempotencyKeys`, so
:func:`statelab.shop.plugins.idempotent_writes` takes either: ``acquire(scope, fingerprint)`` returns a
claim (``claim.answer`` is the remembered answer when the key was already used), ``remember(claim, answer)``
keeps an answer below 400, ``release(claim)`` lets the next attempt in, and ``once(scope, act, fingerprint)``
does all three. Keys are scoped by user; a key is bound to the request it first came with (its
fingerprint): the same key with another request is a JSON 422. An answer is forgotten ``ttl`` seconds after
it was given, and a claim whose attempt never finishes lapses after ``claim_ttl`` seconds: Valkey expires
both records itself, so no process has to sweep.

Each step is one Lua script, so it is atomic inside the server and costs one round trip: claiming a key,
remembering an answer and releasing a claim are safe between processes, not just between threads. A
repeat that arrives while the first attempt still runs asks again every ``poll`` seconds until that
attempt answers or its claim lapses (each ask is a round trip: at a distance, waiting costs trips too).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..shop.plugins import OnceByKey
from ..shop.rules import ApiError
from ..shop.sessions import StoreUnavailable
from .redis import connect

KEY_TTL = 24 * 3600.0  # as IdempotencyKeys: a retry comes within seconds or minutes; a day is generous
CLAIM_TTL = 60.0  # longer than any write takes: an attempt still running when its claim lapses may act twice

_ACQUIRE = """
local r = redis.call('HMGET', KEYS[1], 'fp', 'owner', 'status', 'body')
if not r[1] then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'owner', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'claimed'}
end
if r[1] ~= ARGV[1] then return {'mismatch'} end
if r[2] then return {'wait'} end
return {'answer', r[3], r[4]}
"""

_REMEMBER = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'owner')
  redis.call('HSET', KEYS[1], 'status', ARGV[2], 'body', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass
class ValkeyClaim:
    """One attempt's hold on a key (``answer`` is set when the key was already used and answered)."""

    scope: tuple[str, str]
    answer: tuple[int, Any] | None = None
    fingerprint: str | None = None
    token: str = ""  # which attempt holds the key: a late one must not clobber a newer one's record


def _encode(body: Any) -> str:
    if isinstance(body, (bytes, bytearray)):
        return "b:" + base64.b64encode(bytes(body)).decode()
    return "j:" + json.dumps(body)


def _decode(text: str) -> Any:
    kind, _, data = text.partition(":")
    return base64.b64decode(data) if kind == "b" else json.loads(data)


def _reachable(call: Callable[[], Any]) -> Any:
    from redis.exceptions import ConnectionError, TimeoutError

    try:
        return call()
    except (ConnectionError, TimeoutError) as e:
        raise StoreUnavailable(f"the idempotency keys' Valkey server is unreachable ({type(e).__name__})") from None


class RedisIdempotencyKeys(OnceByKey):
    """Idempotency keys in the Valkey/Redis server at ``url`` (a ``redis://`` or ``unix://`` address, password
    included), under ``prefix`` (the same url and prefix in every process that shares them)."""

    kind = "redis"

    def __init__(self, url: str, prefix: str | None = None, ttl: float = KEY_TTL, claim_ttl: float = CLAIM_TTL,
                 poll: float = 0.005) -> None:
        if not 0 < ttl <= 30 * 86400 or not 0 < claim_ttl <= 3600:
            raise ValueError("ttl must be from 0 to 30 days and claim_ttl from 0 to 3600 s, both above 0")
        self.ttl, self.claim_ttl, self.poll = float(ttl), float(claim_ttl), float(poll)
        self.prefix = f"statelab:{prefix or secrets.token_hex(4)}:idempotency:"
        self.redis = connect(url)
        self._acquire = self.redis.register_script(_ACQUIRE)
        self._remember = self.redis.register_script(_REMEMBER)
        self._release = self.redis.register_script(_RELEASE)

    def _key(self, scope: tuple[str, str]) -> str:
        return self.prefix + json.dumps(list(scope))

    def acquire(self, scope: tuple[str, str], fingerprint: str | None = None) -> ValkeyClaim:
        """Hold ``scope`` (user, key) for this attempt, or get its remembered answer (``claim.answer``).

        Waits while another attempt holds it. Raises :class:`~statelab.shop.rules.ApiError` 422 when the
        key was used with another request (another ``fingerprint``). Call :meth:`release` after each acquire.
        """
        key, token, fp = self._key(scope), secrets.token_hex(8), fingerprint or ""
        claim_ms = max(1, int(self.claim_ttl * 1000))
        while True:
            reply = _reachable(lambda: self._acquire(keys=[key], args=[fp, token, claim_ms]))
            outcome = reply[0]
            if outcome == "claimed":
                return ValkeyClaim(scope, None, fingerprint, token)
            if outcome == "mismatch":
                raise ApiError(422, "this Idempotency-Key was already used with another request (another "
                                    "method, path or body): send a new key for a new request")
            if outcome == "answer":
                return ValkeyClaim(scope, (int(reply[1]), _decode(reply[2])), fingerprint, "")
            time.sleep(self.poll)  # another attempt runs: ask again until it answers or its claim lapses

    def remember(self, claim: ValkeyClaim, answer: tuple[int, Any]) -> None:
        """Store the answer of an attempt that acted (below 400); an error changed nothing, so a retry runs anew."""
        if answer[0] >= 400 or not claim.token:
            return
        ttl_ms = max(1, int(self.ttl * 1000))
        _reachable(lambda: self._remember(keys=[self._key(claim.scope)],
                                          args=[claim.token, int(answer[0]), _encode(answer[1]), ttl_ms]))

    def release(self, claim: ValkeyClaim) -> None:
        """Let the next attempt in: an attempt that remembered no answer gives its key back unused."""
        if claim.token:
            _reachable(lambda: self._release(keys=[self._key(claim.scope)], args=[claim.token]))

    def __len__(self) -> int:
        """Answers remembered now (expired ones and claims still running are not counted)."""
        def count() -> int:
            keys = list(self.redis.scan_iter(match=self.prefix + "*", count=500))
            pipe = self.redis.pipeline(transaction=False)
            for k in keys:
                pipe.hexists(k, "status")
            return sum(1 for answered in pipe.execute() if answered)
        return _reachable(count)

    def clear(self) -> None:
        def delete() -> None:
            keys = list(self.redis.scan_iter(match=self.prefix + "*", count=500))
            if keys:
                self.redis.delete(*keys)
        _reachable(delete)

    def close(self) -> None:
        self.redis.close()

    def __repr__(self) -> str:
        return f"<RedisIdempotencyKeys {self.prefix}*>"
