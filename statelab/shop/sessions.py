"""Server-side session stores: where a stateful server keeps what it knows about each client.

Two stores, one interface:

* :class:`MemoryStore` lives inside one server process. Fast, and gone the moment that
  server crashes; other servers of a cluster cannot see it.
* :class:`SqliteStore` is one file shared by every server of a cluster. Slower per request,
  but it survives a server crash, and any server can answer any client. It becomes the
  new single point of failure, which the fault-tolerance lesson shows.

Both expire idle sessions (``ttl`` seconds since the last use) and both make
:meth:`update` an atomic read-modify-write, so concurrent requests on one session never
lose a write. :meth:`peek` reads without touching: it neither extends the idle timer nor
hides an outage of the store (a dashboard that looks must not change what it looks at).

Two more for the failure lessons: :class:`OutageStore` wraps any shared store (sessions or the
cart table) so it can be switched off and on, and :class:`NaiveStore` updates with a read, a
pause and a write, as hand-written session code often does, and so loses concurrent updates.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from .sqlite import SqlitePool

Session = dict[str, Any]
Updater = Callable[[Session], Session]


def new_session_id() -> str:
    """A fresh, unguessable session id: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


class SessionStore(Protocol):
    """What the demo app needs from a session store."""

    kind: str

    def create(self, data: Session, ttl: float) -> str: ...
    def get(self, sid: str) -> Session | None: ...
    def peek(self, sid: str) -> Session | None: ...
    def update(self, sid: str, change: Updater) -> Session | None: ...
    def delete(self, sid: str) -> bool: ...
    def count(self) -> int: ...
    def clear(self) -> None: ...


#: How many sessions a :class:`MemoryStore` holds by default: what the resource-usage lesson asks of one
#: server (up to 200,000), and a bound on what a flood of anonymous logins can take (about 135 MB at
#: the 674 bytes one costs).
MAX_SESSIONS = 200_000


class SessionStoreFull(RuntimeError):
    """The store holds as many sessions as it may: a new login is refused (a 503), nobody is logged out."""

    def __init__(self, limit: int, retry_after: float) -> None:
        super().__init__(f"too many sessions: this server holds {limit:,}, its most")
        self.limit = limit
        self.retry_after = max(1, math.ceil(min(retry_after, 86400.0)))  # whole seconds, as Retry-After says


class MemoryStore:
    """Sessions in a dict inside one server: they die with it.

    At most ``max_sessions`` at once. When full, expired sessions are purged first; if none has expired,
    the new session is refused (:class:`SessionStoreFull`, which the app answers with a JSON 503 and a
    ``Retry-After``) rather than dropping the least recently used one: evicting would let anyone who can
    reach the login (no password needed) log every real user out, and lose their carts, just by logging
    in often enough. Refusing costs only the newcomer a retry, and idle sessions expire to make room.
    Expired sessions are also purged every ``sweep_every`` seconds as sessions are created, not only when
    someone calls :meth:`count`.
    """

    kind = "memory"

    def __init__(self, max_sessions: int = MAX_SESSIONS, sweep_every: float = 60.0) -> None:
        if type(max_sessions) is not int or max_sessions < 1:
            raise ValueError("max_sessions must be a whole number of sessions, at least 1")
        if not 0 <= sweep_every <= 86400:
            raise ValueError("sweep_every must be from 0 to 86400 seconds")
        self.max_sessions = max_sessions
        self.sweep_every = float(sweep_every)
        self._data: dict[str, tuple[Session, float, float]] = {}  # sid -> (data, ttl, expires_at)
        self._lock = threading.Lock()
        self._next_sweep = 0.0   # when creating a session next sweeps expired ones
        self._next_expiry = math.inf  # no session expires before this: a full store purges only from then

    def create(self, data: Session, ttl: float) -> str:
        sid = new_session_id()
        now = time.time()
        with self._lock:
            full = len(self._data) >= self.max_sessions
            if now >= self._next_sweep or (full and now >= self._next_expiry):
                self._purge(now)
            if len(self._data) >= self.max_sessions:
                raise SessionStoreFull(self.max_sessions, self._next_expiry - now)
            self._data[sid] = (dict(data), ttl, now + ttl)
            self._next_expiry = min(self._next_expiry, now + ttl)
        return sid

    def _purge(self, now: float) -> int:
        """Drop expired sessions (the lock held). A full store refusing a flood of logins does not pass
        over every session each time: only once the earliest expiry it knows of has come."""
        live = {sid: entry for sid, entry in self._data.items() if entry[2] > now}
        dropped = len(self._data) - len(live)
        if dropped:
            self._data = live  # a new dict: one that only had keys deleted keeps its old size in memory
        self._next_sweep = now + self.sweep_every
        self._next_expiry = min((entry[2] for entry in live.values()), default=math.inf)
        return dropped

    def _live(self, sid: str, now: float) -> tuple[Session, float, float] | None:
        entry = self._data.get(sid)
        if entry is None:
            return None
        if entry[2] <= now:
            del self._data[sid]
            return None
        return entry

    def get(self, sid: str) -> Session | None:
        return self._use(sid, dict)

    def _use(self, sid: str, change: Updater) -> Session | None:
        """Apply ``change`` to a live session under the lock; every use extends its idle expiry."""
        now = time.time()
        with self._lock:
            entry = self._live(sid, now)
            if entry is None:
                return None
            data, ttl, _ = entry
            new = change(dict(data))
            self._data[sid] = (new, ttl, now + ttl)
            return dict(new)

    def peek(self, sid: str) -> Session | None:
        """The session's data if it is live, without extending its idle timer."""
        with self._lock:
            entry = self._data.get(sid)
            return dict(entry[0]) if entry is not None and entry[2] > time.time() else None

    def expires_in(self, sid: str) -> float | None:
        """Seconds until the session expires if left idle (None when there is none)."""
        with self._lock:
            entry = self._data.get(sid)
            return None if entry is None else entry[2] - time.time()

    def update(self, sid: str, change: Updater) -> Session | None:
        return self._use(sid, change)

    def delete(self, sid: str) -> bool:
        with self._lock:
            return self._data.pop(sid, None) is not None

    def purge_expired(self) -> int:
        """Drop expired sessions now; return how many went."""
        with self._lock:
            return self._purge(time.time())

    def count(self) -> int:
        self.purge_expired()
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class SqliteStore:
    """Sessions in one SQLite file that every server of a cluster opens.

    Connections come from a :class:`~statelab.shop.sqlite.SqlitePool`; :meth:`update` runs inside
    ``BEGIN IMMEDIATE``, so two concurrent read-modify-writes on one session are serialised,
    never merged.
    """

    kind = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._pool = SqlitePool(path, "CREATE TABLE IF NOT EXISTS sessions ("
                                      " sid TEXT PRIMARY KEY, data TEXT NOT NULL, ttl REAL NOT NULL,"
                                      " expires_at REAL NOT NULL)")

    @property
    def opened(self) -> int:
        """Connections opened so far (the pool grows to the peak concurrency)."""
        return self._pool.opened

    def create(self, data: Session, ttl: float) -> str:
        sid = new_session_id()
        with self._pool.connection() as db:
            db.execute(
                "INSERT INTO sessions (sid, data, ttl, expires_at) VALUES (?, ?, ?, ?)",
                (sid, json.dumps(data), ttl, time.time() + ttl),
            )
        return sid

    def get(self, sid: str) -> Session | None:
        return self.update(sid, lambda data: data)  # a read also extends the idle timer

    def peek(self, sid: str) -> Session | None:
        """The session's data if it is live, without extending its idle timer (errors are raised)."""
        with self._pool.connection() as db:
            row = db.execute("SELECT data FROM sessions WHERE sid = ? AND expires_at > ?",
                             (sid, time.time())).fetchone()
        return None if row is None else json.loads(row[0])

    def expires_in(self, sid: str) -> float | None:
        """Seconds until the session expires if left idle (None when there is none)."""
        with self._pool.connection() as db:
            row = db.execute("SELECT expires_at FROM sessions WHERE sid = ?", (sid,)).fetchone()
        return None if row is None else row[0] - time.time()

    def update(self, sid: str, change: Updater) -> Session | None:
        with self._pool.immediate() as db:
            now = time.time()
            row = db.execute(
                "SELECT data, ttl FROM sessions WHERE sid = ? AND expires_at > ?", (sid, now)
            ).fetchone()
            if row is None:
                return None
            new = change(json.loads(row[0]))
            db.execute(
                "UPDATE sessions SET data = ?, expires_at = ? WHERE sid = ?",
                (json.dumps(new), now + row[1], sid),
            )
            return new

    def delete(self, sid: str) -> bool:
        with self._pool.connection() as db:
            return db.execute("DELETE FROM sessions WHERE sid = ?", (sid,)).rowcount > 0

    def purge_expired(self) -> int:
        """Drop expired sessions now; return how many went."""
        with self._pool.connection() as db:
            return db.execute("DELETE FROM sessions WHERE expires_at <= ?", (time.time(),)).rowcount

    def count(self) -> int:
        with self._pool.connection() as db:
            row = db.execute("SELECT COUNT(*) FROM sessions WHERE expires_at > ?", (time.time(),)).fetchone()
        return int(row[0])

    def clear(self) -> None:
        with self._pool.connection() as db:
            db.execute("DELETE FROM sessions")

    def close(self) -> None:
        """Close every connection this store opened (from any thread)."""
        self._pool.close()


# --------------------------------------------------------------------------- stores for the failure lessons

class StoreUnavailable(RuntimeError):
    """The shared store cannot be reached (see :class:`OutageStore`)."""


class OutageStore:
    """A shared store you can switch off: while it is down every call fails, as calls to a crashed
    database server would. It wraps a real store (a session store such as :class:`SqliteStore`, or
    a table of carts) and changes nothing else: what it holds is still there when it comes back.

    Servers answer a failed store call with 503 when started with
    :func:`statelab.shop.plugins.store_errors_as_503` (without it: a 500).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.down = False

    def fail(self) -> None:
        """The store goes down: every call raises :class:`StoreUnavailable`."""
        self.down = True

    def recover(self) -> None:
        """The store is back, with everything it held."""
        self.down = False

    @contextmanager
    def outage(self) -> Iterator[OutageStore]:
        """``with store.outage(): ...`` the store is down inside the block."""
        self.fail()
        try:
            yield self
        finally:
            self.recover()

    def __getattr__(self, name: str) -> Any:
        """Every other call goes to the wrapped store, and fails while the store is down."""
        if name.startswith("_"):
            raise AttributeError(name)
        attr = getattr(self.inner, name)
        if not callable(attr) or name == "close":
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                raise StoreUnavailable("the shared store is unreachable")
            return attr(*args, **kwargs)

        return call

    def __repr__(self) -> str:
        return f"<OutageStore {'down' if self.down else 'up'} over {self.inner!r}>"


class NaiveStore(MemoryStore):
    """A session store whose ``update`` reads, pauses, then writes, with no lock held in between.

    This is what a hand-rolled ``data = store.get(sid); ...; store.set(sid, data)`` does (with
    Redis ``GET``/``SET``, or a row read then written without a transaction). The pause
    (``delay`` seconds) stands for the work between the read and the write, and makes the race
    show up reliably on a busy machine.
    """

    kind = "naive"

    def __init__(self, delay: float = 0.02) -> None:
        super().__init__()
        self.delay = delay

    def update(self, sid: str, change: Updater) -> Session | None:
        data = self.get(sid)  # read (a copy)
        if data is None:
            return None
        time.sleep(self.delay)  # meanwhile, another request reads the same old data
        new = change(data)  # modify
        entry = self._data.get(sid)
        if entry is None:
            return None
        self._data[sid] = (new, entry[1], time.time() + entry[1])  # write: last writer wins
        return dict(new)
