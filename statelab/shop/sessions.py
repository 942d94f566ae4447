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
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
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


class MemoryStore:
    """Sessions in a dict inside one server: they die with it."""

    kind = "memory"

    def __init__(self) -> None:
        self._data: dict[str, tuple[Session, float, float]] = {}  # sid -> (data, ttl, expires_at)
        self._lock = threading.Lock()

    def create(self, data: Session, ttl: float) -> str:
        sid = new_session_id()
        with self._lock:
            self._data[sid] = (dict(data), ttl, time.time() + ttl)
        return sid

    def _live(self, sid: str, now: float) -> tuple[Session, float, float] | None:
        entry = self._data.get(sid)
        if entry is None:
            return None
        if entry[2] <= now:
            del self._data[sid]
            return None
        return entry

    def get(self, sid: str) -> Session | None:
        now = time.time()
        with self._lock:
            entry = self._live(sid, now)
            if entry is None:
                return None
            data, ttl, _ = entry
            self._data[sid] = (data, ttl, now + ttl)  # idle expiry: every use extends
            return dict(data)

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
        now = time.time()
        with self._lock:
            entry = self._live(sid, now)
            if entry is None:
                return None
            data, ttl, _ = entry
            new = change(dict(data))
            self._data[sid] = (new, ttl, now + ttl)
            return dict(new)

    def delete(self, sid: str) -> bool:
        with self._lock:
            return self._data.pop(sid, None) is not None

    def purge_expired(self) -> int:
        """Drop expired sessions now; return how many went."""
        now = time.time()
        with self._lock:
            dead = [sid for sid, (_, _, exp) in self._data.items() if exp <= now]
            for sid in dead:
                del self._data[sid]
        return len(dead)

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
