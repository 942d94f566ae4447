"""Cluster: N bookshop servers, a load balancer in front, and the state they share.

One object wires together what a real deployment would spread over machines, so a lesson
can say ``cluster.kill(1)`` and watch what happens to the users.

Servers are named ``server-0`` ... ``server-N-1`` (as Kubernetes names a StatefulSet's
pods), so ``cluster.kill(1)`` kills ``server-1``, which is ``cluster.servers[1]``.
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Any

from ..service.registry import register
from ..shop.server import Server
from ..shop.sessions import SessionStore, SqliteStore
from ..shop.tokens import Keyring
from .balancer import LoadBalancer

STORES = ("memory", "sqlite")


class Cluster:
    """``servers`` bookshop servers of one ``mode`` behind a ``balancer`` strategy.

    ``store="memory"`` gives each server its own sessions; ``store="sqlite"`` gives all of
    them one shared file. In stateless mode every server gets the same :class:`Keyring`, so
    a token issued by one verifies on all.
    """

    def __init__(self, servers: int = 3, mode: str = "stateful", store: str | SessionStore = "memory",
                 balancer: str = "round_robin", *, algorithm: str = "HS256", session_ttl: float = 1800,
                 token_ttl: float = 900, plugins: Any = ()) -> None:
        if not isinstance(servers, int) or not 1 <= servers <= 32:
            raise ValueError("servers must be a whole number from 1 to 32")
        if isinstance(store, str) and store not in STORES:
            raise ValueError(f"store must be one of {', '.join(STORES)} or a SessionStore, not {store!r}")
        self.mode = mode
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if store == "sqlite":
            self._tmp = tempfile.TemporaryDirectory(prefix="statelab-", ignore_cleanup_errors=True)
            store = SqliteStore(Path(self._tmp.name) / "sessions.sqlite3")
        self.store: str | SessionStore = store
        self.keyring = Keyring(algorithm) if mode == "stateless" else None
        self._options = dict(mode=mode, store=store, keyring=self.keyring, secret_key=secrets.token_bytes(32),
                             session_ttl=session_ttl, token_ttl=token_ttl, plugins=tuple(plugins))
        self.servers: list[Server] = []
        self.balancer = LoadBalancer((), balancer, start=False)
        register(self)
        try:
            for _ in range(servers):
                self.add_server()
            self.balancer.start()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        """The balancer's url: clients talk to this."""
        return self.balancer.url

    def _server(self, which: int | str | Server) -> Server:
        if isinstance(which, Server):
            return which
        if isinstance(which, str):
            for s in self.servers:
                if s.name == which:
                    return s
            raise KeyError(f"no server called {which!r}; servers are {[s.name for s in self.servers]}")
        if isinstance(which, int) and not isinstance(which, bool) and 0 <= which < len(self.servers):
            return self.servers[which]
        raise IndexError(f"server index must be 0 to {len(self.servers) - 1}, not {which!r}")

    def add_server(self) -> Server:
        """Start one more server; the balancer routes to it from the next request on."""
        server = Server(name=f"server-{len(self.servers)}", **self._options)
        server.start()
        self.servers.append(server)
        self.balancer.add(server)
        return server

    def kill(self, which: int | str | Server) -> Server:
        """Crash one server (by index, name or object)."""
        server = self._server(which)
        server.kill()
        return server

    def restart(self, which: int | str | Server) -> Server:
        """Bring one server back, empty, on the same url."""
        server = self._server(which)
        server.restart()
        self.balancer.mark_up(server.name)
        return server

    @property
    def alive(self) -> list[bool]:
        return [s.alive for s in self.servers]

    @property
    def strategy(self) -> str:
        return self.balancer.strategy

    @strategy.setter
    def strategy(self, value: str) -> None:
        self.balancer.strategy = value

    def sessions(self) -> dict[str, int]:
        """Sessions each server can see (with a shared store, each sees them all)."""
        return {s.name: s.sessions for s in self.servers}

    def stop(self) -> None:
        """Stop the balancer and every server, and close the shared store."""
        self.balancer.stop()
        for server in self.servers:
            server.stop()
        if isinstance(self.store, SqliteStore):
            self.store.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        up = sum(self.alive)
        return (f"<Cluster {self.mode} store={getattr(self.store, 'kind', self.store)} "
                f"balancer={self.strategy} {up}/{len(self.servers)} up {self.url}>")
