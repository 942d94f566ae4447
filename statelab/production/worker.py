"""The gunicorn worker class of the bookshop: ``statelab.production.worker.BookshopWorker``.

Gunicorn's threaded worker (``gthread``) with two things the bookshop promises everywhere else:

* **A read deadline.** A client must send a request (head and body) within ``STATELAB_READ_TIMEOUT``
  seconds (10 by default) of its first byte, or it gets a JSON 408 and is cut. Gunicorn's own
  workers have none: a client that sends one header byte a second holds a worker (``sync``) or one
  of its threads (``gthread``) for as long as it likes, so six slow clients stalled both workers of
  notebook 13. With ``threads`` per worker, a few slow clients take a few threads, not the server.
* **Errors in JSON.** What gunicorn refuses before the app sees it (a header line over its limit,
  a malformed request line) gets the same ``{"error": ...}`` body as every statelab answer,
  instead of gunicorn's HTML page. Gunicorn writes those pages with ``gunicorn.util.write_error``;
  each worker process replaces it with :func:`write_json_error` when it starts (the master, and
  any other program, keeps gunicorn's own).
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker
from werkzeug.exceptions import RequestTimeout

READ_TIMEOUT = float(os.environ.get("STATELAB_READ_TIMEOUT", "10"))


class ReadDeadline(RequestTimeout):
    """The client did not send its request in time. A werkzeug 408, so a body read inside the app is
    answered by the app's own JSON error handler, and a head read by gunicorn by :meth:`handle_error`."""

    def __init__(self) -> None:
        super().__init__(f"the request did not arrive within {READ_TIMEOUT:g} s of its first byte")


class _Deadline:
    """A client socket whose every ``recv`` waits at most until one deadline (not a fresh timeout per read,
    which a client sending one byte at a time would never meet)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.deadline: float | None = None  # set by the first read of each request

    def recv(self, size: int, *flags: int) -> bytes:
        if self.deadline is None:
            self.deadline = time.monotonic() + READ_TIMEOUT
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ReadDeadline()
        prior = self._sock.gettimeout()
        self._sock.settimeout(left)
        try:
            return self._sock.recv(size, *flags)
        except TimeoutError:
            raise ReadDeadline() from None
        finally:
            self._sock.settimeout(prior)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """Gunicorn's error page (same status, same message), as JSON."""
    text = f"{reason}: {mesg}" if mesg else reason
    body = json.dumps({"error": text}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    util.write_nonblock(sock, head + body)


class BookshopWorker(ThreadWorker):
    """``worker_class`` for gunicorn: gthread, with a read deadline and JSON error pages."""

    def init_process(self) -> None:
        util.write_error = write_json_error  # this worker process only: it serves nothing but the bookshop
        super().init_process()

    def handle(self, conn: Any) -> Any:
        if not isinstance(conn.sock, _Deadline):
            conn.sock = _Deadline(conn.sock)
        conn.sock.deadline = None  # each request's first read starts its clock
        return super().handle(conn)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if isinstance(exc, ReadDeadline):
            self.log.info("request from %s cut: %s", addr, exc.description)
            try:
                write_json_error(client, 408, "Request Timeout", exc.description or "")
            except OSError:
                pass
            return
        super().handle_error(req, client, addr, exc)
