"""One SQLite file shared by the threads of every server: a connection pool and atomic read-modify-write.

Both shared tables of the bookshop (the session store and the cart table) live in SQLite files that
several in-process servers open at once. They need the same two things, kept here once:

* a small pool of connections: werkzeug answers each request in a new thread, and opening a
  connection per request (or per thread) would cost more than the lookup itself. A connection is
  used by one thread at a time;
* a read-modify-write that never loses a write: :meth:`SqlitePool.immediate` runs inside
  ``BEGIN IMMEDIATE``, which takes the write lock before the read, so two concurrent updates of
  one row are serialised, never merged.

WAL mode with ``synchronous=NORMAL`` is SQLite's usual setting for this: readers never block the
writer, and a commit does not wait for the disk (a power cut may lose the last commits; a crash of
the process loses nothing).
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class SqlitePool:
    """Pooled connections to one SQLite file; ``close()`` closes all of them, from any thread."""

    def __init__(self, path: str | Path, schema: str) -> None:
        self.path = str(path)
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.closed = False
        self.opened = 0  # connections opened so far (the pool grows to the peak concurrency)
        with self.connection() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(schema)

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """Borrow a pooled connection (autocommit) for one operation."""
        try:
            db = self._idle.get_nowait()
        except queue.Empty:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA synchronous=NORMAL")
            with self._lock:
                self._all.append(db)
                self.opened += 1
        try:
            yield db
        finally:
            if self.closed:
                db.close()
            else:
                self._idle.put(db)

    @contextmanager
    def immediate(self) -> Iterator[sqlite3.Connection]:
        """A connection inside ``BEGIN IMMEDIATE``: committed on success, rolled back on any error."""
        with self.connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        """Close every connection (a connection borrowed after this is closed when given back)."""
        self.closed = True
        with self._lock:
            for db in self._all:
                try:
                    db.close()
                except sqlite3.Error:
                    pass
            self._all.clear()
