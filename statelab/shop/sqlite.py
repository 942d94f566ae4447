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

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class SqlitePool:
    """Pooled connections to one SQLite file; ``close()`` may be called from any thread.

    ``close()`` closes the idle connections at once and each borrowed one when it is given back:
    closing a connection while another thread is inside ``execute`` on it crashes the interpreter
    (a segmentation fault in CPython's sqlite3 module, measured when a cluster stopped while a killed
    server's request thread was still writing).
    """

    def __init__(self, path: str | Path, schema: str) -> None:
        self.path = str(path)
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.closed = False
        self.opened = 0  # connections opened so far (the pool grows to the peak concurrency)
        with self.connection() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(schema)

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """Borrow a pooled connection (autocommit) for one operation."""
        with self._lock:
            if self.closed:  # as a closed connection would: the caller sees an outage
                raise sqlite3.ProgrammingError(f"the connections to {self.path} are closed")
            db = self._idle.pop() if self._idle else None
            if db is None:
                self.opened += 1
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA busy_timeout=30000")
            db.execute("PRAGMA synchronous=NORMAL")
        try:
            yield db
        finally:
            with self._lock:
                keep = not self.closed
                if keep:
                    self._idle.append(db)
            if not keep:
                db.close()

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
        """Close the idle connections now; a borrowed one is closed when its thread gives it back."""
        with self._lock:
            self.closed = True
            idle, self._idle = self._idle, []
        for db in idle:
            try:
                db.close()
            except sqlite3.Error:
                pass
