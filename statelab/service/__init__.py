"""The in-process HTTP service: a WSGI app on 127.0.0.1 in a daemon thread, that can crash.

:class:`HttpService` is what every "machine" of the lessons is built on (a bookshop
:class:`~statelab.shop.server.Server`, a :class:`~statelab.topology.balancer.LoadBalancer`, a
:class:`~statelab.topology.cache.SharedCache`). It serves with werkzeug's threaded server, which
here can also cut its open connections (a crash does), and answers the errors raised below
the WSGI app (a bad request line, too many headers) with JSON, like the app itself.

:mod:`statelab.service.registry` tracks what was started, so re-running a notebook cell or
``stop_all()`` stops it.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import threading
import time
from http import HTTPStatus
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

HOST = "127.0.0.1"
POLL_INTERVAL = 0.05  # how often serve_forever checks for shutdown: bounds kill() latency

logging.getLogger("werkzeug").setLevel(logging.ERROR)


class PortInUseError(OSError):
    """The port a server should listen on is taken by another program."""


class _Handler(WSGIRequestHandler):
    """Werkzeug's handler, quiet, and answering errors below Flask with JSON too."""

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


class _Httpd(ThreadedWSGIServer):
    """Werkzeug's threaded server that can cut its open connections (a crash does)."""

    daemon_threads = True
    service_name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.open_connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self.crashed = False

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        with self._conn_lock:
            conns = list(self.open_connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A crash cuts connections mid-request; the handler thread's broken pipe is expected.
        if not self.crashed:
            logging.getLogger("statelab").debug("request error", exc_info=True)


# --------------------------------------------------------------------------- one HTTP service

class HttpService:
    """A WSGI app served on 127.0.0.1 in a daemon thread; the base of Server and LoadBalancer."""

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
                httpd = _Httpd(HOST, self.port, None, handler=_Handler)
            except SystemExit:  # werkzeug exits the process on a busy port; say it plainly instead
                raise PortInUseError(
                    errno.EADDRINUSE,
                    f"port {self.port} on {HOST} is in use by another program; "
                    f"stop that program or start {self.name} on another port (port=0 picks a free one)",
                ) from None
            httpd.service_name = self.name
            self.port = httpd.server_port
            try:
                httpd.app = self._build_app()  # once the port is known: a server names its cookie after it
            except BaseException:
                httpd.server_close()
                raise
            thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": POLL_INTERVAL},
                                      name=f"statelab-{self.name}", daemon=True)
            self._httpd, self._thread = httpd, thread
            thread.start()
            return self

    def _shutdown(self, crash: bool) -> None:
        with self._lock:
            httpd, thread = self._httpd, self._thread
            if httpd is None:
                return
            self._httpd = self._thread = None
            httpd.crashed = crash
            if crash:
                httpd.cut_connections()
            httpd.shutdown()  # serve_forever returns within POLL_INTERVAL and closes the socket
            httpd.server_close()
            if crash:
                httpd.cut_connections()  # anything accepted while we were stopping
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=2)
            self._on_down()

    def stop(self) -> None:
        """Clean shutdown: stop listening. Safe to call twice."""
        self._shutdown(crash=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "alive" if self.alive else "down"
        return f"<{type(self).__name__} {self.name} {self.url} {state}>"


def wait_until(condition: Any, timeout: float = 2.0, interval: float = 0.005) -> bool:
    """Poll ``condition()`` until true or ``timeout``; return whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())
