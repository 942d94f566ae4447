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

from ..service import PortInUseError
from ..service.registry import register
from ..shop.app import default_cart
from ..shop.carts import CartStore, SqliteCartStore
from ..shop.server import Server, cookie_name_for
from ..shop.sessions import SessionStore, SqliteStore
from ..shop.tokens import Keyring
from .balancer import LoadBalancer

STORES = ("memory", "sqlite")


class Cluster:
    """``servers`` bookshop servers of one ``mode`` behind a ``balancer`` strategy.

    ``store="memory"`` gives each server its own sessions; ``store="sqlite"`` gives all of
    them one shared file. In stateless mode every server gets the same :class:`Keyring`, so
    a token issued by one verifies on all. ``cart`` is where carts live (see
    :func:`statelab.create_app`); with ``cart="db"`` every server shares one cart table,
    ``cluster.carts`` (a SQLite file in the cluster's temporary folder, removed by ``stop()``, unless
    ``carts=`` passes a :class:`~statelab.shop.carts.CartStore` the caller owns and closes).
    All servers share one cookie name, tied to the cluster (``cluster.cookie_name``).
    """

    def __init__(self, servers: int = 3, mode: str = "stateful", store: str | SessionStore = "memory",
                 balancer: str = "round_robin", *, cart: str | None = None, algorithm: str = "HS256",
                 session_ttl: float = 1800, token_ttl: float = 900, token_max_age: float | None = None,
                 carts: CartStore | None = None, csrf_guard: bool = True, plugins: Any = ()) -> None:
        if not isinstance(servers, int) or not 1 <= servers <= 32:
            raise ValueError("servers must be a whole number from 1 to 32")
        if isinstance(store, str) and store not in STORES:
            raise ValueError(f"store must be one of {', '.join(STORES)} or a SessionStore, not {store!r}")
        self.cart = default_cart(mode, cart)
        self.mode = mode
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if carts is not None and self.cart != "db":
            raise ValueError(f"carts= is the shared table of cart='db'; this cluster keeps carts in the {self.cart}")
        if store == "sqlite" or (self.cart == "db" and carts is None):
            self._tmp = tempfile.TemporaryDirectory(prefix="statelab-", ignore_cleanup_errors=True)
        self._owns_store = store == "sqlite"
        if store == "sqlite":
            store = SqliteStore(Path(self._tmp.name) / "sessions.sqlite3")
        self.store: str | SessionStore = store
        self._owns_carts = self.cart == "db" and carts is None
        self.carts: CartStore | None = (SqliteCartStore(Path(self._tmp.name) / "carts.sqlite3")
                                        if self._owns_carts else carts)
        self.keyring = Keyring(algorithm) if mode == "stateless" else None
        self._cookie_base = f"sid-c{secrets.token_hex(3)}"
        self._options = dict(mode=mode, cart=self.cart, store=store, carts=self.carts, keyring=self.keyring,
                             secret_key=secrets.token_bytes(32), session_ttl=session_ttl, token_ttl=token_ttl,
                             token_max_age=token_max_age, cookie_name=self._cookie_base, csrf_guard=csrf_guard,
                             plugins=tuple(plugins))
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
    def cookie_name(self) -> str | None:
        """The cookie every server of this cluster carries the login in (None when stateless)."""
        return cookie_name_for(self.mode, self._cookie_base)

    @property
    def csrf_guard(self) -> bool:
        """Whether every server refuses non-JSON bodies (415) and cross-origin writes (403): read from the
        servers, so one switched off on its own (``cluster.servers[1].csrf_guard = False``) shows here.
        Settable: every server takes the new value, and a server added later starts with it."""
        return all(server.csrf_guard for server in self.servers)

    @csrf_guard.setter
    def csrf_guard(self, on: bool) -> None:
        self._options["csrf_guard"] = bool(on)  # for the servers added later
        for server in self.servers:
            server.csrf_guard = on

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
        """Bring one server back, empty, on the same url (on a new one, which the balancer follows, if
        another program took its port meanwhile: the cluster's url does not change)."""
        server = self._server(which)
        try:
            server.restart()
        except PortInUseError:  # another program took its port while it was down: a free one, followed
            server.restart(port=0)
            self.balancer.follow(server)
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
        """Stop the balancer and every server, and close the shared store the cluster made (not one passed in)."""
        self.balancer.stop()
        for server in self.servers:
            server.stop()
        if self._owns_store and isinstance(self.store, SqliteStore):
            self.store.close()  # the cluster's own store; one the caller passed in stays open
        if self._owns_carts and self.carts is not None:
            self.carts.close()  # the cluster's own table; one the caller passed in stays open
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        up = sum(self.alive)
        return (f"<Cluster {self.mode} cart={self.cart} store={getattr(self.store, 'kind', self.store)} "
                f"balancer={self.strategy} {up}/{len(self.servers)} up {self.url}>")
