"""Our one reliance on werkzeug's internals: its threaded development server, with what a lesson needs added.

Why a subclass at all: werkzeug's server is the one every Flask learner has met (``flask run``), and the
lessons need four things from it that it does not offer through public API:

* **read deadlines**: a request's head, then its body, must arrive in time, or the client gets a JSON 408
  and is cut (``Httpd.service_actions``, ``Handler.run_wsgi``, ``Handler.make_environ``), so a slow or
  silent client cannot hold a server thread for ever;
* **cutting open connections**: a crash (``cluster.kill(1)``) ends every connection at once, as the death of
  a process does, and nothing accepted afterwards is answered or acted on (``Httpd.cut_connections``);
* **keeping the port across a kill** (:class:`Listener`): nobody else can take a crashed server's port and
  answer in its name;
* **JSON for errors below the WSGI app** (``Handler.send_error``, ``Handler.parse_request``): a bad request
  line or too many headers gets ``{"error": ...}`` like every other error, never an HTML page.

The methods overridden here are not werkzeug's documented API. :data:`OVERRIDDEN` records the signatures we
override and the environ key we read; ``tests/unit/test_httpd_contract.py`` compares them with the installed
werkzeug and fails loudly when one changes, and ``pyproject.toml`` bounds werkzeug above to releases we tested.
Nothing outside :mod:`statelab.service` imports this module: :class:`statelab.service.HttpService` is the API.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import socket
import struct
import sys
import threading
import time
from http import HTTPStatus
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from ..rawhttp import MAX_BODY

HOST = "127.0.0.1"
POLL_INTERVAL = 0.05  # how often serve_forever checks for shutdown: bounds kill() latency

#: werkzeug (and http.server) methods overridden below, with the parameter names we rely on. A change in the
#: installed werkzeug fails tests/unit/test_httpd_contract.py: read its changelog, adapt this module, then update.
OVERRIDDEN: dict[str, dict[str, tuple[str, ...]]] = {
    "WSGIRequestHandler": {
        "send_error": ("self", "code", "message", "explain"),
        "parse_request": ("self",),
        "run_wsgi": ("self",),
        "make_environ": ("self",),
        "log_request": ("self", "code", "size"),
        "log_error": ("self", "format", "args"),
        "log_message": ("self", "format", "args"),
    },
    "ThreadedWSGIServer": {
        "__init__": ("self", "host", "port", "app", "handler", "passthrough_errors", "ssl_context", "fd"),
        "process_request": ("self", "request", "client_address"),
        "shutdown_request": ("self", "request"),
        "service_actions": ("self",),
        "handle_error": ("self", "request", "client_address"),
        "serve_forever": ("self", "poll_interval"),
    },
}
#: environ keys werkzeug sets that make_environ reads
ENVIRON_KEYS = ("wsgi.input_terminated",)

logging.getLogger("werkzeug").setLevel(logging.ERROR)


LISTEN_BACKLOG = 128
MAX_BLANK_LINES = 8  # empty lines ignored before a request line (RFC 9112 2.2 asks for at least one)
#: Headers a proxy sets to say how the browser reached it. Believed only from a process of this Unix user.
FORWARDING_HEADERS = ("X-Forwarded-Host", "X-Forwarded-Prefix")
TOO_LARGE_HEADERS = (
    "the request's headers are too large (a header line over 64 KiB, or over 100 headers). From a browser this "
    "is almost always cookies: a browser sends every cookie of 127.0.0.1 to every port of it, and a page on "
    "any port of this host can set many large ones. Clear this site's cookies (127.0.0.1) in your browser's "
    "settings, then reload"
)


class PortInUseError(OSError):
    """The port a server should listen on is taken by another program."""


class Listener:
    """A service's listening socket, which outlives a crash of the service (as the port of a service
    manager does: systemd's socket activation keeps the socket while the process restarts).

    Why: a crash is the death of a process, not of its port. If the port were freed, any program on
    the machine (another learner's, on a shared one) could bind it within microseconds, receive what
    clients send there (a session cookie, a Bearer token) and answer as if it were our server. So a
    killed service keeps its socket bound but stops listening (``pause``): connections are refused at
    once, exactly as with a dead process, and ``SO_REUSEADDR`` is cleared so that nobody else's bind can
    share the port. ``resume`` listens again on the same port. Only ``close`` (a clean stop) frees it.

    That is Linux, where ``shutdown()`` of a listening socket stops it listening and keeps it bound (what
    JupyterHub and Binder run). Elsewhere (macOS) a paused listener is closed and ``resume`` binds the port
    again: a kill frees the port there, on what is usually a machine of one user.
    """

    KEEPS_PORT = sys.platform.startswith("linux")

    def __init__(self, port: int) -> None:
        self.sock: socket.socket | None = self._bind(port)
        self.port: int = self.sock.getsockname()[1]

    @staticmethod
    def _bind(port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # our own old connections may linger
            if port == 0 and Listener.KEEPS_PORT:
                # Linux frees a port picked by bind(0) when the socket stops listening: pick one, then bind it
                # by number (a held port); the probe keeps it ours until then.
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                    probe.bind((HOST, 0))
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind((HOST, probe.getsockname()[1]))
            else:
                sock.bind((HOST, port))
            sock.listen(LISTEN_BACKLOG)
        except BaseException:
            sock.close()
            raise
        return sock

    def pause(self) -> None:
        """Stop listening but keep the port: connections are refused (and any waiting in the backlog reset)."""
        if self.sock is None:
            return
        if not self.KEEPS_PORT:
            self.close()
            return
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 0)  # nobody else may bind it now

    def resume(self) -> None:
        """Listen again on the same port (SO_REUSEADDR back on, so our own closed connections do not block it)."""
        if self.sock is None:
            self.sock = self._bind(self.port)
            return
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.listen(LISTEN_BACKLOG)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def fileno(self) -> int:
        assert self.sock is not None, "resume() the listener first"
        return self.sock.fileno()


def port_in_use(port: int, name: str) -> PortInUseError:
    return PortInUseError(
        errno.EADDRINUSE,
        f"port {port} on {HOST} is in use by another program; "
        f"stop that program or start {name} on another port (port=0 picks a free one)",
    )


_SOCK_DIAG_BY_FAMILY, _NETLINK_SOCK_DIAG, _NLMSG_ERROR = 20, 4, 2
_ALL_STATES, _NO_COOKIE = 0xFFFFFFFF, 0xFFFFFFFF


def _uid_of_peer(local_port: int, peer_port: int) -> int | None:
    """The Unix user that owns the other end of our loopback connection (None: cannot tell here).

    The kernel knows every socket's owner; Linux answers "who owns 127.0.0.1:peer_port -> 127.0.0.1:local_port"
    over netlink (sock_diag, what ``ss`` uses), in microseconds and without privileges. Elsewhere (macOS) None.
    """
    if not hasattr(socket, "AF_NETLINK"):
        return None
    for family, loopback in ((socket.AF_INET, socket.inet_aton(HOST) + bytes(12)),
                             (socket.AF_INET6, socket.inet_pton(socket.AF_INET6, "::ffff:" + HOST))):
        # struct inet_diag_req_v2: the peer's socket has the client's port as its source, ours as destination
        request = struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, _ALL_STATES)
        request += struct.pack("!HH", peer_port, local_port) + loopback + loopback
        request += struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE)
        message = struct.pack("=IHHII", 16 + len(request), _SOCK_DIAG_BY_FAMILY, 1, 1, 0) + request  # NLM_F_REQUEST
        try:
            with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
                nl.settimeout(1)
                nl.send(message)
                reply = nl.recv(8192)
        except OSError:
            return None
        if len(reply) >= 16 + 72 and struct.unpack_from("=H", reply, 4)[0] != _NLMSG_ERROR:
            return int(struct.unpack_from("=I", reply, 16 + 64)[0])  # inet_diag_msg.idiag_uid
    return -1  # no such connection: not a process of this machine we can name, so not ours


def _json_head(code: int, phrase: str, body: bytes, served_by: str) -> bytes:
    return (f"HTTP/1.1 {code} {phrase}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\nX-Served-By: {served_by}\r\n\r\n").encode("latin-1")


class Handler(WSGIRequestHandler):
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
        if code == 431:  # http.server's "Line too long" / "Too many headers" says nothing a learner can act on
            message = TOO_LARGE_HEADERS
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

    def parse_request(self) -> bool:
        """Parse the request line, after skipping empty lines before it (RFC 9112 2.2: a server SHOULD ignore
        at least one); only blank lines, or more than :data:`MAX_BLANK_LINES`, get a JSON 400."""
        skipped = 0
        while self.raw_requestline in (b"\r\n", b"\n") and skipped < MAX_BLANK_LINES:
            skipped += 1
            self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline:  # the client sent blank lines and hung up: nobody to answer
            self.close_connection = True
            return False
        if self.raw_requestline in (b"\r\n", b"\n") or len(self.raw_requestline) > 65536:
            self.command, self.request_version, self.requestline = "", "HTTP/1.0", ""
            if len(self.raw_requestline) > 65536:
                self.send_error(414)
            else:
                self.send_error(400, f"no request line after {MAX_BLANK_LINES} empty lines")
            return False
        return super().parse_request()

    def run_wsgi(self) -> None:
        """Run the app for a request whose head has arrived, unless the server went down meanwhile."""
        server: Httpd = self.server  # type: ignore[assignment]
        has_body = self.headers.get("Transfer-Encoding") or self.headers.get("Content-Length", "0").strip() != "0"
        if not server.begin_request(self.connection, has_body):
            self.close_connection = True  # a stopped or crashed server answers nothing, acts on nothing
            return
        super().run_wsgi()

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        environ["statelab.connection"] = self.connection  # lets the app's wrapper end the body deadline
        # The target exactly as the request line carried it (its bytes as latin-1, as PEP 3333 does).
        # Werkzeug's RAW_URI encodes it to UTF-8 once more, so /caf\xc3\xa9 would be forwarded as /caf%C3%83%C2%A9.
        environ["RAW_URI"] = self.path
        self._drop_foreign_forwarding(environ)
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


    def _drop_foreign_forwarding(self, environ: dict[str, Any]) -> None:
        drop_foreign_forwarding(environ)


def drop_foreign_forwarding(environ: dict[str, Any]) -> None:
    """Ignore X-Forwarded-Host and X-Forwarded-Prefix unless a process of this Unix user sent them.

    They say how a browser reached us through a proxy (the Host it saw, for the same-origin check; the
    path jupyter-server-proxy mounts us under, for cookie paths). The proxies that set them are ours:
    statelab's balancer and cache, and jupyter-server-proxy inside your own Jupyter server, all running
    as you. A browser cannot send them to another site without asking first (CORS), so the one sender to
    refuse is another user of a shared machine. Every server statelab runs calls it: the thread-based one
    here, and gunicorn's workers (:func:`statelab.production.wsgi.build`). Where the owner cannot be asked
    (not Linux: macOS, usually a machine of one user) they are kept; a connection the kernel cannot name an
    owner for is not ours.
    """
    present = [h for h in FORWARDING_HEADERS if "HTTP_" + h.upper().replace("-", "_") in environ]
    if not present:
        return
    try:
        uid = _uid_of_peer(int(environ["SERVER_PORT"]), int(environ["REMOTE_PORT"]))
    except (KeyError, ValueError):
        uid = None
    if uid is not None and uid != os.getuid():
        for h in present:
            environ.pop("HTTP_" + h.upper().replace("-", "_"), None)


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


class Httpd(ThreadedWSGIServer):
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
