"""One bookshop server on 127.0.0.1 that can crash and come back.

A :class:`Server` is one "machine" of the lesson. ``kill()`` is a crash (the socket closes,
open connections are cut, and everything the server held in memory is gone); ``restart()``
brings it back on the same url with empty memory, as a fresh process would be.

Serving HTTP is :mod:`statelab.service`'s job; re-run safety is :mod:`statelab.service.registry`'s.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..service import HttpService
from ..service.registry import register
from .app import MODES, Plugin, create_app
from .sessions import MemoryStore, SessionStore, SqliteStore
from .tokens import Keyring


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
