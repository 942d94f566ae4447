"""The in-process HTTP service: a WSGI app on 127.0.0.1 in a daemon thread, that can crash.

:class:`HttpService` is what every "machine" of the lessons is built on (a bookshop
:class:`~statelab.shop.server.Server`, a :class:`~statelab.topology.balancer.LoadBalancer`, a
:class:`~statelab.topology.cache.SharedCache`). It serves with werkzeug's threaded server, which
here also cuts its open connections when it stops or crashes, bounds how long a client may take
to send a request, and answers the errors raised below the WSGI app (a bad request line, too many
headers, a client out of time) with JSON, like the app itself. :func:`running` lists the services
this interpreter runs (``load.run`` sends load to no other).

:mod:`statelab.service.registry` tracks what was started, so re-running a notebook cell or
``stop_all()`` stops it.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import socket
import threading
import time
import weakref
from http import HTTPStatus
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler
from werkzeug.wrappers import Response

from ..rawhttp import MAX_BODY

HOST = "127.0.0.1"
POLL_INTERVAL = 0.05  # how often serve_forever checks for shutdown: bounds kill() latency

logging.getLogger("werkzeug").setLevel(logging.ERROR)


class PortInUseError(OSError):
    """The port a server should listen on is taken by another program."""


def _json_head(code: int, phrase: str, body: bytes, served_by: str) -> bytes:
    return (f"HTTP/1.1 {code} {phrase}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\nX-Served-By: {served_by}\r\n\r\n").encode("latin-1")


class _Handler(WSGIRequestHandler):
    """Werkzeug's handler, quiet, answering errors below Flask with JSON too, and only while its server is up."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log_error(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log_message(self, *args: Any, **kwargs: Any) -> None:
        pass

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # Reached for requests http.server rejects before WSGI: bad request line, too-long
        # URL, too many or too-long headers. The default body is an HTML page.
        if self.request_version == "HTTP/0.9":  # unparsable request line: still send a status line
            self.request_version = "HTTP/1.0"
        if code >= 500:  # only 505 (unsupported HTTP version) gets here: the client's fault, so a 4xx
            message = f"{HTTPStatus(code).phrase}: {message}" if message else HTTPStatus(code).phrase
            code = 400
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        body = json.dumps({"error": f"{phrase}: {message}" if message else phrase}).encode()
        self.send_response(code, phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.send_header("X-Served-By", getattr(self.server, "service_name", "?"))
        self.end_headers()
        self.close_connection = True
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def run_wsgi(self) -> None:
        """Run the app for a request whose head has arrived, unless the server went down meanwhile."""
        server: _Httpd = self.server  # type: ignore[assignment]
        has_body = self.headers.get("Transfer-Encoding") or self.headers.get("Content-Length", "0").strip() != "0"
        if not server.begin_request(self.connection, has_body):
            self.close_connection = True  # a stopped or crashed server answers nothing, acts on nothing
            return
        super().run_wsgi()

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        environ["statelab.connection"] = self.connection  # lets the app's wrapper end the body deadline
        length = environ.get("CONTENT_LENGTH", "")
        done = lambda: self.server.body_read(self.connection)  # noqa: E731
        if length.isdigit() and 0 < int(length) <= MAX_BODY and not environ.get("wsgi.input_terminated"):
            # Read the body before the app runs (as nginx buffers it), so its deadline is the client's time
            # only, whether or not the app reads it. A body cut short reaches the app short: a 400 there.
            body = self.rfile.read(int(length))
            done()
            environ["wsgi.input"] = io.BytesIO(body)
        else:  # chunked, or too large to hold (the app refuses it unread): the deadline ends with the read
            environ["wsgi.input"] = _TimedInput(environ["wsgi.input"], int(length) if length.isdigit() else None,
                                                done)
        return environ


class _TimedInput:
    """The request body stream; says when the app has read it all, so its deadline ends there.

    Whatever the app does after (a proxy waiting for its upstream, a slow view) is not the client's time.
    """

    def __init__(self, stream: Any, length: int | None, done: Any) -> None:
        self._stream, self._left, self._done = stream, length, done

    def _count(self, n: int) -> None:
        if self._left is not None:
            self._left -= n
        if not n or (self._left is not None and self._left <= 0):
            self._done()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._count(len(data))
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self._stream.readline(size)
        self._count(len(data))
        return data

    def readinto(self, buffer: Any) -> int:
        n = self._stream.readinto(buffer) or 0
        self._count(n)
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Httpd(ThreadedWSGIServer):
    """Werkzeug's threaded server that can cut its open connections (a crash does), with read deadlines.

    A request's head must arrive within ``header_timeout`` seconds of the connection opening, and its
    body within ``body_timeout`` seconds of the head (until the app starts its answer). A client that
    is slower (or silent) gets a JSON 408 and is cut, so it cannot hold a server thread for ever.
    The deadlines are checked on every turn of ``serve_forever``'s loop (every ``POLL_INTERVAL``).
    """

    daemon_threads = True
    service_name = "?"

    def __init__(self, host: str, port: int, app: Any, *, header_timeout: float, body_timeout: float,
                 **kwargs: Any) -> None:
        super().__init__(host, port, app, **kwargs)
        self.header_timeout, self.body_timeout = header_timeout, body_timeout
        self.open_connections: set[socket.socket] = set()
        self._deadlines: dict[socket.socket, tuple[float, str]] = {}  # connection -> (deadline, what is awaited)
        self._timed_out: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self.crashed = False
        self.down = False

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self.open_connections.add(request)
            self._deadlines[request] = (time.monotonic() + self.header_timeout, "headers")
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self.open_connections.discard(request)
            self._deadlines.pop(request, None)
            self._timed_out.discard(request)
        super().shutdown_request(request)

    def begin_request(self, conn: socket.socket, has_body: bool) -> bool:
        """The head has arrived: start the body's deadline (if any). False when nothing may be answered."""
        with self._conn_lock:
            if self.down or conn in self._timed_out:
                return False
            if has_body:
                self._deadlines[conn] = (time.monotonic() + self.body_timeout, "body")
            else:
                self._deadlines.pop(conn, None)
            return True

    def body_read(self, conn: socket.socket) -> None:
        """The app has the whole body: the client's time is no longer counted."""
        with self._conn_lock:
            if conn not in self._timed_out:
                self._deadlines.pop(conn, None)

    def answer_in_time(self, app: Any) -> Any:
        """``app``, wrapped so that starting an answer ends the body deadline (and is refused once too late)."""

        def guarded(environ: dict[str, Any], start_response: Any) -> Any:
            conn = environ.get("statelab.connection")

            def start(status: str, headers: Any, exc_info: Any = None) -> Any:
                with self._conn_lock:  # the app answers: the body, if any, has been read
                    if self.down or conn in self._timed_out:
                        raise ConnectionAbortedError("the server went down or the client's time ran out")
                    self._deadlines.pop(conn, None)
                return start_response(status, headers, exc_info)

            return app(environ, start)

        return guarded

    def service_actions(self) -> None:
        """Called by serve_forever on every turn: cut the connections whose client ran out of time."""
        now = time.monotonic()
        with self._conn_lock:
            late = [(conn, what) for conn, (deadline, what) in self._deadlines.items() if now > deadline]
            for conn, _ in late:
                del self._deadlines[conn]
                self._timed_out.add(conn)
        for conn, what in late:
            limit = self.header_timeout if what == "headers" else self.body_timeout
            body = json.dumps({"error": f"Request Timeout: the request's {what} did not arrive within "
                                        f"{limit:g} s"}).encode()
            try:
                conn.send(_json_head(408, "Request Timeout", body, self.service_name) + body, socket.MSG_DONTWAIT)
            except OSError:
                pass
            self._cut(conn)

    @staticmethod
    def _cut(conn: socket.socket) -> None:
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def cut_connections(self) -> None:
        with self._conn_lock:
            self.down = True
            conns = list(self.open_connections)
        for conn in conns:
            self._cut(conn)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A crash cuts connections mid-request; the handler thread's broken pipe is expected.
        if not self.crashed:
            logging.getLogger("statelab").debug("request error", exc_info=True)


# --------------------------------------------------------------------------- one HTTP service

_running: weakref.WeakSet[HttpService] = weakref.WeakSet()  # every service of this interpreter now listening


def running() -> list[HttpService]:
    """Every server, balancer and cache this interpreter is running now (nothing another program runs)."""
    return [service for service in list(_running) if service.alive]


class HttpService:
    """A WSGI app served on 127.0.0.1 in a daemon thread; the base of Server and LoadBalancer.

    ``header_timeout`` and ``body_timeout`` bound how long a client may take to send a request's
    head and its body (a client on loopback takes microseconds; a person typing into ``nc`` has
    ten seconds). Set them before ``start()``.
    """

    header_timeout = 10.0
    body_timeout = 10.0

    def __init__(self, name: str, port: int = 0) -> None:
        self.name = name
        self.port = port
        self._httpd: _Httpd | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()

    # subclasses build the app to serve; called at every (re)start
    def _build_app(self) -> Any:
        raise NotImplementedError

    def _on_down(self) -> None:
        """Called after the service stopped listening (crash or clean stop)."""

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def alive(self) -> bool:
        return self._httpd is not None

    def start(self) -> HttpService:
        """Listen (port 0 picks a free one the first time; later starts reuse it)."""
        with self._lock:
            if self._httpd is not None:
                return self
            try:
                httpd = _Httpd(HOST, self.port, None, handler=_Handler, header_timeout=self.header_timeout,
                               body_timeout=self.body_timeout)
            except SystemExit:  # werkzeug exits the process on a busy port; say it plainly instead
                raise PortInUseError(
                    errno.EADDRINUSE,
                    f"port {self.port} on {HOST} is in use by another program; "
                    f"stop that program or start {self.name} on another port (port=0 picks a free one)",
                ) from None
            httpd.service_name = self.name
            self.port = httpd.server_port
            try:
                # once the port is known: a server names its cookie after it
                httpd.app = httpd.answer_in_time(self._build_app())
            except BaseException:
                httpd.server_close()
                raise
            thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": POLL_INTERVAL},
                                      name=f"statelab-{self.name}", daemon=True)
            self._httpd, self._thread = httpd, thread
            thread.start()
            _running.add(self)
            return self

    def _shutdown(self, crash: bool) -> None:
        with self._lock:
            httpd, thread = self._httpd, self._thread
            if httpd is None:
                return
            self._httpd = self._thread = None
            _running.discard(self)
            httpd.crashed = crash
            httpd.cut_connections()  # from now on no request is answered or acted on, crash or clean stop
            httpd.shutdown()  # serve_forever returns within POLL_INTERVAL and closes the socket
            httpd.server_close()
            httpd.cut_connections()  # anything accepted while we were stopping
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=2)
            self._on_down()

    def stop(self) -> None:
        """Clean shutdown: stop listening and close every open connection. Safe to call twice."""
        self._shutdown(crash=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "alive" if self.alive else "down"
        return f"<{type(self).__name__} {self.name} {self.url} {state}>"


def json_error(status: int, message: str, served_by: str, **headers: str) -> Response:
    """``{"error": message}`` with ``status``, as every statelab server answers an error (never an HTML page)."""
    return Response(json.dumps({"error": message}), status=status, mimetype="application/json",
                    headers={"X-Served-By": served_by, **headers})


def wait_until(condition: Any, timeout: float = 2.0, interval: float = 0.005) -> bool:
    """Poll ``condition()`` until true or ``timeout``; return whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())
