"""In-process HTTP servers: real sockets on 127.0.0.1, each in its own daemon thread.

A :class:`Server` is one "machine" of the lesson. ``kill()`` is a crash (the socket closes,
open connections are cut, and everything the server held in memory is gone); ``restart()``
brings it back on the same url with empty memory, as a fresh process would be.

Notebooks re-run cells. So every server is registered: re-running a cell stops what that
cell's previous run started, ``stop_all()`` stops everything, and interpreter exit does too.
"""

from __future__ import annotations

import atexit
import errno
import json
import logging
import secrets
import socket
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Iterable
from http import HTTPStatus
from pathlib import Path
from typing import Any

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from .app import MODES, Plugin, create_app
from .sessions import MemoryStore, SessionStore, SqliteStore
from .tokens import Keyring

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


# --------------------------------------------------------------------------- the registry

_live: weakref.WeakSet[Any] = weakref.WeakSet()
_by_cell: dict[str, tuple[str, list[Any]]] = {}
_registry_lock = threading.RLock()


def _cell_run() -> tuple[str, str] | None:
    """(cell key, run id) when called from a Jupyter cell being executed, else None.

    The cell key is the notebook cell id when the front end sends one, or the file name
    IPython compiled the cell under (a hash of its source). The run id is the execute
    request's message id, unique for each run of a cell.
    """
    ip = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    if ip is None:
        return None
    kernel = getattr(ip, "kernel", None)
    parent: dict[str, Any] = {}
    if kernel is not None:
        try:
            parent = kernel.get_parent("shell") or {}
        except Exception:
            parent = getattr(kernel, "_parent_header", {}) or {}
    run_id = str((parent.get("header") or {}).get("msg_id") or getattr(ip, "execution_count", ""))
    cell_id = (parent.get("metadata") or {}).get("cellId")
    if not cell_id:
        cells = getattr(getattr(ip, "compile", None), "_filename_map", {})
        frame = sys._getframe(1)
        while frame is not None:  # the outermost frame compiled from a cell
            if frame.f_code.co_filename in cells:
                cell_id = frame.f_code.co_filename
            frame = frame.f_back
    return (str(cell_id), run_id) if cell_id else None


def register(owner: Any) -> None:
    """Track ``owner`` (anything with ``stop()``) for ``stop_all()`` and for cell re-runs.

    Called once for each object a user creates (a :class:`Server` from :func:`serve`, a
    ``Cluster``, a ``LoadBalancer``): when the same notebook cell runs again, everything its
    previous run registered is stopped first, so re-running a cell never leaks a server.
    """
    run = _cell_run()
    with _registry_lock:
        _live.add(owner)
        if run is None:
            return
        cell, run_id = run
        previous_run, owners = _by_cell.get(cell, (run_id, []))
        if previous_run != run_id:
            for old in owners:
                if old is not owner:
                    old.stop()
            owners = []
        owners.append(owner)
        _by_cell[cell] = (run_id, owners)


def stop_all() -> int:
    """Stop every server, balancer and cluster this interpreter started; return how many."""
    with _registry_lock:
        owners = list(_live)
        _by_cell.clear()
    for owner in owners:
        owner.stop()
    return len(owners)


atexit.register(stop_all)


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
            app = self._build_app()
            try:
                httpd = _Httpd(HOST, self.port, app, handler=_Handler)
            except SystemExit:  # werkzeug exits the process on a busy port; say it plainly instead
                raise PortInUseError(
                    errno.EADDRINUSE,
                    f"port {self.port} on {HOST} is in use by another program; "
                    f"stop that program or start {self.name} on another port (port=0 picks a free one)",
                ) from None
            httpd.service_name = self.name
            self.port = httpd.server_port
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


class Server(HttpService):
    """One bookshop server (see :mod:`statelab.shop.app`) that can crash and come back.

    ``store`` is ``"memory"`` (its own sessions, lost on a crash) or a shared
    :class:`~statelab.shop.sessions.SessionStore`; ``keyring`` holds the token keys (shared by a
    cluster, kept across restarts, like configuration on disk).
    """

    _serial: dict[str, int] = {}

    def __init__(
        self,
        mode: str = "stateful",
        *,
        name: str | None = None,
        port: int = 0,
        store: str | SessionStore = "memory",
        keyring: Keyring | None = None,
        algorithm: str = "HS256",
        secret_key: bytes | None = None,
        session_ttl: float = 1800,
        token_ttl: float = 900,
        cookie_name: str = "sid",
        plugins: Iterable[Plugin] = (),
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if name is None:
            Server._serial[mode] = Server._serial.get(mode, 0) + 1
            name = f"{mode}-{Server._serial[mode]}"
        super().__init__(name, port)
        self.mode = mode
        if isinstance(store, str):
            if store == "sqlite":
                store = SqliteStore(Path(tempfile.mkdtemp(prefix="statelab-")) / "sessions.sqlite3")
            elif store != "memory":
                raise ValueError(f"store must be 'memory', 'sqlite' or a SessionStore, not {store!r}")
        self._shared_store: SessionStore | None = None if isinstance(store, str) else store
        if keyring is None and mode == "stateless":
            keyring = Keyring(algorithm)
        self.keyring = keyring
        self._app_options = dict(
            mode=mode, keyring=keyring, secret_key=secret_key or secrets.token_bytes(32),
            session_ttl=session_ttl, token_ttl=token_ttl, cookie_name=cookie_name, plugins=tuple(plugins),
        )
        self.app: Any = None
        self.store: SessionStore | None = None

    def _build_app(self) -> Any:
        store = self._shared_store
        if store is None and self.mode == "stateful":
            store = MemoryStore()  # a fresh process has empty memory
        self.store = store
        self.app = create_app(name=self.name, store=store, **self._app_options)
        return self.app

    def _on_down(self) -> None:
        if self._shared_store is None and self.store is not None:
            self.store.clear()  # the process's memory is gone
        self.store = None if self._shared_store is None else self._shared_store
        self.app = None

    @property
    def sessions(self) -> int:
        """Sessions this server can see right now (0 when down or stateless)."""
        if not self.alive or self.store is None:
            return 0
        return self.store.count()

    @property
    def requests(self) -> int:
        """Requests answered since this server (re)started."""
        app = self.app
        return app.extensions["statelab"]["served"] if app is not None and self.alive else 0

    def kill(self) -> None:
        """Crash: stop listening, cut open connections, lose everything held in memory."""
        self._shutdown(crash=True)

    def restart(self) -> Server:
        """Come back on the same url with empty memory (a kill first, if still alive)."""
        self.kill()
        return self.start()  # type: ignore[return-value]


def serve(mode: str = "stateful", **options: Any) -> Server:
    """Start one bookshop server on 127.0.0.1 and return it (see :class:`Server` for options).

    Re-running the notebook cell that called ``serve`` stops the server its last run started.
    """
    server = Server(mode, **options)
    register(server)
    server.start()
    return server


def wait_until(condition: Any, timeout: float = 2.0, interval: float = 0.005) -> bool:
    """Poll ``condition()`` until true or ``timeout``; return whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())
