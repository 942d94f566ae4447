"""One bookshop server on 127.0.0.1 that can crash and come back.

A :class:`Server` is one "machine" of the lesson. ``kill()`` is a crash (the socket closes,
open connections are cut, and everything the server held in memory is gone); ``restart()``
brings it back on the same url with empty memory, as a fresh process would be.

Serving HTTP is :mod:`statelab.service`'s job; re-run safety is :mod:`statelab.service.registry`'s.
"""

from __future__ import annotations

import errno
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..service import HOST, HttpService, PortInUseError, cleanup
from ..service.registry import register
from .app import Plugin, create_app, default_cart
from .carts import CartStore, MemoryCartStore
from .sessions import MemoryStore, SessionStore, SqliteStore
from .tokens import Keyring


def cookie_name_for(mode: str, base: str) -> str | None:
    """The name of the cookie that carries a login for ``mode`` (None: a stateless client holds a token)."""
    return {"stateful": base, "cookie": f"{base}-signed"}.get(mode)


class Server(HttpService):
    """One bookshop server (see :mod:`statelab.shop.app`) that can crash and come back.

    ``mode`` is who you are and ``cart`` where the cart lives (see :func:`statelab.create_app`).
    ``store`` is ``"memory"`` (its own sessions, lost on a crash), ``"sqlite"`` or a shared
    :class:`~statelab.shop.sessions.SessionStore`; ``carts`` the cart table for ``cart="db"`` (its own
    when omitted, kept across crashes like a database would be); ``keyring`` holds the token keys
    (shared by a cluster, kept across restarts, like configuration on disk).

    Cookies are per host, not per port: every server on 127.0.0.1 would receive, and overwrite, a
    cookie called ``sid``. So each server names its cookie after its port (``sid-54321``, stable
    across restarts), unless given ``cookie_name`` (a cluster gives all its servers one name).
    """

    _serial: dict[str, int] = {}

    def __init__(
        self,
        mode: str = "stateful",
        *,
        cart: str | None = None,
        name: str | None = None,
        port: int = 0,
        store: str | SessionStore = "memory",
        carts: CartStore | None = None,
        keyring: Keyring | None = None,
        algorithm: str = "HS256",
        secret_key: bytes | None = None,
        session_ttl: float = 1800,
        token_ttl: float = 900,
        token_max_age: float | None = None,
        session_max_age: float | None = None,
        cookie_name: str | None = None,
        csrf_guard: bool = True,
        plugins: Iterable[Plugin] = (),
    ) -> None:
        self.cart = default_cart(mode, cart)  # a ValueError before anything starts
        if name is None:
            Server._serial[mode] = Server._serial.get(mode, 0) + 1
            name = f"{mode}-{Server._serial[mode]}"
        super().__init__(name, port)
        self.mode = mode
        if isinstance(store, str) and store not in ("memory", "sqlite"):
            raise ValueError(f"store must be 'memory', 'sqlite' or a SessionStore, not {store!r}")
        self._own_sqlite = store == "sqlite"  # a file of its own, in a temp folder it removes on stop()
        self._tmp: cleanup.Scratch | None = None
        self._shared_store: SessionStore | None = None if isinstance(store, str) else store
        if keyring is None and mode == "stateless":
            keyring = Keyring(algorithm)
        self.keyring = keyring
        if self.cart == "db" and carts is None:
            carts = MemoryCartStore()  # this server's own database: outside its memory, so a crash keeps it
        self.carts: CartStore | None = carts if self.cart == "db" else None
        self._cookie_base = cookie_name
        self._app_options = dict(
            mode=mode, cart=self.cart, carts=self.carts, keyring=keyring,
            secret_key=secret_key or secrets.token_bytes(32), session_ttl=session_ttl, token_ttl=token_ttl,
            token_max_age=token_max_age, session_max_age=session_max_age, csrf_guard=csrf_guard,
            plugins=tuple(plugins),
        )
        self.app: Any = None
        self.store: SessionStore | None = None
        self._keyed_paths: frozenset[str] = frozenset()  # known from the last start: also asked once crashed

    @property
    def cookie_name(self) -> str | None:
        """The name of the cookie that carries this server's login (``sid-<port>`` unless given; None if
        stateless). Known once the server has a port (after the first start when ``port=0``)."""
        base = self._cookie_base or (f"sid-{self.port}" if self.port else None)
        return cookie_name_for(self.mode, base) if base else None

    @property
    def csrf_guard(self) -> bool:
        """Whether non-JSON bodies (415) and cross-origin writes (403) are refused; settable while running."""
        return bool(self._app_options["csrf_guard"])

    @csrf_guard.setter
    def csrf_guard(self, on: bool) -> None:
        self._app_options["csrf_guard"] = bool(on)
        if self.app is not None:
            self.app.extensions["statelab"]["csrf_guard"] = bool(on)

    def _build_app(self) -> Any:
        if self._own_sqlite and self._shared_store is None:  # first start, or the first after a stop()
            # removed at interpreter exit if stop() never came, and by the keeper if the kernel is killed
            self._tmp = cleanup.folder("statelab-")
            self._shared_store = SqliteStore(Path(self._tmp.name) / "sessions.sqlite3")
        store = self._shared_store
        if store is None and self.mode == "stateful":
            store = MemoryStore()  # a fresh process has empty memory
        self.store = store
        base = self._cookie_base or f"sid-{self.port}"
        self.app = create_app(name=self.name, store=store, cookie_name=base, **self._app_options)
        self._keyed_paths = frozenset(self.app.extensions["statelab"].get("keyed_paths", ()))
        return self.app

    def honours_idempotency_key(self, path: str) -> bool:
        """Whether this server acts at most once on writes to ``path`` that carry the same ``Idempotency-Key``
        (a plugin such as :func:`~statelab.shop.plugins.idempotent_writes` says so when installed). A balancer
        re-sends a keyed write that a crash cut only to servers that say yes: one that ignores the key would
        act on the repeat as on a new request."""
        return path in self._keyed_paths

    def _on_down(self) -> None:
        if self._shared_store is None and self.store is not None:
            self.store.clear()  # the process's memory is gone
        self.store = None if self._shared_store is None else self._shared_store
        self.app = None

    @property
    def sessions(self) -> int:
        """Logins this server keeps state for right now (0 when down, or when clients hold it all)."""
        app = self.app
        if not self.alive or app is None:
            return 0
        return app.extensions["statelab"]["identity"].sessions()

    @property
    def requests(self) -> int:
        """Requests answered since this server (re)started."""
        app = self.app
        return app.extensions["statelab"]["served"] if app is not None and self.alive else 0

    def stop(self) -> None:
        """Clean shutdown: stop listening, close every connection, and remove a ``store="sqlite"`` file of its own."""
        super().stop()
        with self._lock:
            if self._own_sqlite and self._shared_store is not None:
                self._shared_store.close()
                self._shared_store = self.store = None
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    def kill(self) -> None:
        """Crash: stop listening, cut open connections, lose everything held in memory.

        Connections are refused at once, as with a dead process, but the port stays this server's
        (:class:`~statelab.service.Listener`): nobody can take it and answer in its name meanwhile."""
        self._shutdown(crash=True)

    def restart(self, port: int | None = None) -> Server:
        """Come back with empty memory (a kill first, if still alive), on the same url.

        A killed server kept its port (:class:`~statelab.service.Listener`), so nobody could take it. After a
        clean ``stop()`` the port was free: if another program took it meanwhile, that is a
        :class:`~statelab.service.PortInUseError`; ``restart(port=0)`` comes back on a free port
        instead (a new url: clients must follow; a cluster's balancer does it by itself).
        """
        self.kill()
        if port is not None:
            self.port = port
        try:
            return self.start()  # type: ignore[return-value]
        except PortInUseError:
            raise PortInUseError(
                errno.EADDRINUSE,
                f"{self.name} cannot come back on port {self.port} of {HOST}: another program took it while "
                f"the server was down. server.restart(port=0) brings it back on a free port (a new url).",
            ) from None


def serve(mode: str = "stateful", **options: Any) -> Server:
    """Start one bookshop server on 127.0.0.1 and return it (see :class:`Server` for options).

    Re-running the notebook cell that called ``serve`` stops the server its last run started.
    """
    server = Server(mode, **options)
    register(server)
    server.start()
    return server
