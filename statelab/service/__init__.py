"""The in-process HTTP service: a WSGI app on 127.0.0.1 in a daemon thread, that can crash.

:class:`HttpService` is what every "machine" of the lessons is built on (a bookshop
:class:`~statelab.shop.server.Server`, a :class:`~statelab.topology.balancer.LoadBalancer`, a
:class:`~statelab.topology.cache.SharedCache`). It serves with werkzeug's threaded server, which
here also cuts its open connections when it stops or crashes, bounds how long a client may take
to send a request, and answers the errors raised below the WSGI app (a bad request line, too many
headers, a client out of time) with JSON, like the app itself: all of that, our one reliance on
werkzeug's internals, lives in :mod:`statelab.service.httpd`. :func:`running` lists the services
this interpreter runs (``load.run`` sends load to no other).

A service owns its listening socket across a crash (:class:`Listener`): a killed server refuses
connections at once, as a dead process does, but its port stays bound, so no other program (another
learner's on a shared machine) can take it and pose as the server while it is down.

:mod:`statelab.service.registry` tracks what was started, so re-running a notebook cell or
``stop_all()`` stops it.
"""

from __future__ import annotations

import errno
import json
import threading
import time
import weakref
from typing import Any

from werkzeug.wrappers import Response

from .httpd import HOST, POLL_INTERVAL, Handler, Httpd, Listener, PortInUseError, port_in_use

__all__ = ["HOST", "POLL_INTERVAL", "HttpService", "Listener", "PortInUseError", "json_error", "running", "track",
           "wait_until"]


# --------------------------------------------------------------------------- one HTTP service

_running: weakref.WeakSet[HttpService] = weakref.WeakSet()  # every service of this interpreter now listening


def running() -> list[HttpService]:
    """Every server, balancer and cache this interpreter is running now (nothing another program runs)."""
    return [service for service in list(_running) if service.alive]


def track(service: Any) -> None:
    """Count ``service`` (anything with ``url`` and ``alive``) among :func:`running`: a server this interpreter
    started as an OS process of its own (gunicorn, in :mod:`statelab.production`), so ``load.run`` may load it."""
    _running.add(service)


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
        self._httpd: Httpd | None = None
        self._thread: threading.Thread | None = None
        self._listener: Listener | None = None  # kept across a crash (see Listener)
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
            if self._listener is not None and self._listener.port != self.port:
                self.release_port()  # asked to come back on another port
            try:
                if self._listener is None:
                    self._listener = Listener(self.port)
                else:
                    self._listener.resume()
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise
                raise port_in_use(self.port, self.name) from None
            try:
                httpd = Httpd(HOST, self._listener.port, None, handler=Handler, header_timeout=self.header_timeout,
                               body_timeout=self.body_timeout, fd=self._listener.fileno())
            except BaseException:
                self._listener.pause()
                raise
            httpd.service_name = self.name
            self.port = self._listener.port
            try:
                # once the port is known: a server names its cookie after it
                httpd.app = httpd.answer_in_time(self._build_app())
            except BaseException:
                httpd.server_close()
                self._listener.pause()
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
            if self._listener is not None:
                self._listener.pause()  # refused from now on; a crash keeps the port (see Listener)
            httpd.cut_connections()  # from now on no request is answered or acted on, crash or clean stop
            httpd.shutdown()  # serve_forever returns within POLL_INTERVAL and closes its copy of the socket
            httpd.server_close()
            if not crash:
                self.release_port()
            httpd.cut_connections()  # anything accepted while we were stopping
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=2)
            self._on_down()

    def stop(self) -> None:
        """Clean shutdown: stop listening, close every open connection and free the port. Safe to call twice."""
        self._shutdown(crash=False)
        self.release_port()

    def release_port(self) -> None:
        """Free the port a crashed service kept (``stop()`` does it; so does a restart on another port)."""
        with self._lock:
            if self._listener is not None and self._httpd is None:
                self._listener.close()
                self._listener = None

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
