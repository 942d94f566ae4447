"""Server-side session stores: where a stateful server keeps what it knows about each client.

Two stores, one interface:

* :class:`MemoryStore` lives inside one server process. Fast, and gone the moment that
  server crashes; other servers of a cluster cannot see it.
* :class:`SqliteStore` is one file shared by every server of a cluster. Slower per request,
  but it survives a server crash, and any server can answer any client. It becomes the
  new single point of failure, which the fault-tolerance lesson shows.

Both expire idle sessions (``ttl`` seconds since the last use) and both make
:meth:`update` an atomic read-modify-write, so concurrent requests on one session never
lose a write.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

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


class _Connection:
    """One thread's SQLite connection (a holder, so the store can track it weakly)."""

    __slots__ = ("db", "__weakref__")

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db


class SqliteStore:
    """Sessions in one SQLite file that every server of a cluster opens.

    Each thread gets its own connection (SQLite connections must not be shared across
    threads). Updates run inside ``BEGIN IMMEDIATE``, which takes the write lock before the
    read, so two concurrent read-modify-writes on one session are serialised, never merged.
    """

    kind = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._conns: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._conns_lock = threading.Lock()
        self.opened = 0  # connections opened so far (one per thread that used the store)
        db = self._conn()
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(
            "CREATE TABLE IF NOT EXISTS sessions ("
            " sid TEXT PRIMARY KEY, data TEXT NOT NULL, ttl REAL NOT NULL, expires_at REAL NOT NULL)"
        )

    def _conn(self) -> sqlite3.Connection:
        handle = getattr(self._local, "db", None)
        if handle is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout=30000")
            handle = _Connection(db)
            # werkzeug runs each request in a new thread: close its connection when the thread
            # ends (its thread-local goes), or every request would leak a connection and two fds
            weakref.finalize(handle, db.close)
            self._local.db = handle
            with self._conns_lock:
                self._conns.add(handle)
                self.opened += 1
        return handle.db

    def create(self, data: Session, ttl: float) -> str:
        sid = new_session_id()
        self._conn().execute(
            "INSERT INTO sessions (sid, data, ttl, expires_at) VALUES (?, ?, ?, ?)",
            (sid, json.dumps(data), ttl, time.time() + ttl),
        )
        return sid

    def get(self, sid: str) -> Session | None:
        return self.update(sid, lambda data: data)  # a read also extends the idle timer

    def update(self, sid: str, change: Updater) -> Session | None:
        db = self._conn()
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute(
                "SELECT data, ttl FROM sessions WHERE sid = ? AND expires_at > ?", (sid, now)
            ).fetchone()
            if row is None:
                db.execute("COMMIT")
                return None
            new = change(json.loads(row[0]))
            db.execute(
                "UPDATE sessions SET data = ?, expires_at = ? WHERE sid = ?",
                (json.dumps(new), now + row[1], sid),
            )
            db.execute("COMMIT")
            return new
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def delete(self, sid: str) -> bool:
        cur = self._conn().execute("DELETE FROM sessions WHERE sid = ?", (sid,))
        return cur.rowcount > 0

    def purge_expired(self) -> int:
        """Drop expired sessions now; return how many went."""
        cur = self._conn().execute("DELETE FROM sessions WHERE expires_at <= ?", (time.time(),))
        return cur.rowcount

    def count(self) -> int:
        row = self._conn().execute(
            "SELECT COUNT(*) FROM sessions WHERE expires_at > ?", (time.time(),)
        ).fetchone()
        return int(row[0])

    def clear(self) -> None:
        self._conn().execute("DELETE FROM sessions")

    def close(self) -> None:
        """Close every connection this store opened (from any thread)."""
        with self._conns_lock:
            for handle in list(self._conns):
                try:
                    handle.db.close()
                except sqlite3.Error:
                    pass
            self._conns.clear()
        self._local = threading.local()
