"""The dashboard: server cards, the learner's browser, what it holds, and what it saw.

``dashboard(target)`` takes a :class:`~statelab.shop.server.Server`, a
:class:`~statelab.topology.cluster.Cluster`, a list of them, or a dict that names them
(``{"session + memory": memory, ...}``): one client each, and a toggle above the cards to pick which one the
buttons talk to. Unnamed targets are named by their design (``design_of``), so the dashboard says what the
notebook's text says. It re-renders after every cell and, throttled, when its clients send requests from code.
Every button calls the public API a cell would call, then
the whole dashboard re-renders from the objects' state. Nothing here raises into the
notebook: a failing action becomes a red line under the buttons.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as W

from .. import kernel
from ..client import Client
from ..shop.server import Server
from ..topology.cluster import Cluster
from ._base import BORDER, FG_DIM, HUES, Runner, box, esc
from .client_panel import ClientPanel
from .history import History
from .inspector import Inspector
from .network_card import NetworkCard
from .server_card import BalancerCard, ServerCard

Target = Server | Cluster | Sequence[Server | Cluster] | Mapping[str, Server | Cluster]

#: How often at most the dashboard re-renders by itself while cells send requests (seconds).
REFRESH_EVERY = 0.3

_AUTO_NAME = re.compile(r"^(stateful|stateless)-\d+$")  # a Server's default name: sl.serve() without name=


def _targets(target: Any) -> list[tuple[str | None, Server | Cluster]]:
    """``(name or None, target)`` pairs: a dict names its targets, anything else is named by ``name_of``."""
    if isinstance(target, (Server, Cluster)):
        return [(None, target)]
    if isinstance(target, Mapping) and target and all(isinstance(t, (Server, Cluster)) for t in target.values()):
        return [(str(name), t) for name, t in target.items()]
    if isinstance(target, (list, tuple)) and target and all(isinstance(t, (Server, Cluster)) for t in target):
        return [(None, t) for t in target]
    raise TypeError("dashboard(target): target must be a Server (sl.serve(...)), a Cluster (sl.Cluster(...)), "
                    "a list of them, or a dict naming them ({'session + memory': memory, ...}), "
                    f"not {type(target).__name__}")


def design_of(t: Server | Cluster) -> str | None:
    """The name of the design ``t`` is built as (``statelab.experiments.DESIGNS``), or None if it is none of them.

    A design is a mode, where the cart lives and, for sessions, where the session store is: read from the
    running objects, so a dashboard can say "session + memory" instead of "cluster (stateful, 3 servers)".
    """
    mode, cart = getattr(t, "mode", None), getattr(t, "cart", None)
    store = getattr(t, "store", None)
    kind = getattr(t, "store_kind", None) or getattr(store, "kind", None)
    if mode == "stateless":
        return {"token": "token + cart in token", "db": "token + cart in db"}.get(cart)
    if mode == "stateful" and cart == "session":
        if kind == "memory" or (kind is None and isinstance(t, Server) and not t.alive):
            return "session + memory"
        if kind in ("sqlite", "valkey", "redis"):
            return "session + shared store"
    return None


def name_of(t: Server | Cluster) -> str:
    """What a dashboard calls ``t`` when it is not given a name: a Server's own name if someone chose it, else
    the design it is built as, else its mode."""
    if isinstance(t, Server) and not _AUTO_NAME.match(t.name):
        return t.name
    design = design_of(t)
    if design is not None:
        return design
    if isinstance(t, Cluster):
        return f"cluster ({t.mode}, {len(t.servers)} servers)"
    return t.name if t.mode in t.name else f"{t.name} ({t.mode})"


def _unique(names: list[str]) -> list[str]:
    """The names, with " #2", " #3" added to repeats: a toggle with two equal labels highlights the wrong one."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} #{seen[n]}")
    for i, n in enumerate(out):  # "a #2" given by hand and made here: keep going until all differ
        while out.count(n) > 1:
            n = f"{n}'"
        out[i] = n
    return out


def _label(t: Server | Cluster) -> str:
    return name_of(t)


def _what(t: Server | Cluster) -> str:
    if isinstance(t, Cluster):
        return f"{t.mode}, cluster of {len(t.servers)} servers behind a balancer"
    return f"{t.mode}, one server"


class Dashboard(W.VBox):
    """The widget ``dashboard()`` returns. ``.client`` is the Client its buttons use right now;
    ``.refresh()`` re-renders everything from the servers' and the client's state. ``.names`` are the targets'
    names, as the "talk to" buttons and the group headers show them."""

    def __init__(self, target: Target, client: Client | None = None) -> None:
        pairs = _targets(target)
        self.targets = [t for _name, t in pairs]
        self.names = _unique([name if name is not None else name_of(t) for name, t in pairs])
        self._own_clients: list[Client] = []
        self.clients: list[Client] = []
        for t in self.targets:
            self.clients.append(self._client_for(t, client))
        if client is not None and client not in self.clients:
            self.clients[0] = client  # a client for some other url: the caller knows best

        self.palette: dict[str, int] = {}
        for t in self.targets:
            for s in self._servers_of(t):
                self._colour(s.name)

        self.message = W.HTML("")
        self.runner = Runner(self.refresh, self.message)
        self.cards: list[ServerCard] = []
        self.balancer_cards: list[BalancerCard] = []
        self.network_cards: list[NetworkCard] = []  # one per cluster whose shared parts are at a distance
        # One group per target: a header with its name, then its cards (servers, balancer, network) in a row.
        self.group_headers = [W.HTML() for _ in self.targets]
        self.group_rows = [W.HBox(layout=W.Layout(flex_flow="row wrap", align_items="stretch")) for _ in self.targets]
        self.cards_box = W.VBox([W.VBox([h, r]) for h, r in zip(self.group_headers, self.group_rows, strict=True)])
        self._sync_cards()

        self.client_panel = ClientPanel(self.clients, self.names, self.runner)
        self.inspector = Inspector(self.client, self.target)
        self.history = History(self.client, self.palette)
        self.title = W.HTML()
        super().__init__([
            self.title,
            self.client_panel,
            self.message,
            self.cards_box,
            W.HBox([self.inspector, self.history], layout=W.Layout(flex_flow="row wrap", align_items="flex-start")),
        ], layout=W.Layout(width="100%", max_width="1400px"))
        self._last_refresh = 0.0
        self._listening = True
        for c in self.clients:
            c.listeners.append(self._on_exchange)
        _watch_cells(self)
        self.refresh()

    # --- set-up helpers --------------------------------------------------------------------
    def _client_for(self, t: Server | Cluster, given: Client | None) -> Client:
        if given is not None and given.url == t.url.rstrip("/"):
            return given
        if given is not None and len(self.targets) == 1:
            return given
        c = Client(t.url)
        self._own_clients.append(c)
        return c

    @staticmethod
    def _servers_of(t: Server | Cluster) -> list[Server]:
        return list(t.servers) if isinstance(t, Cluster) else [t]

    def _colour(self, name: str) -> int:
        if name not in self.palette:
            self.palette[name] = HUES[len(self.palette) % len(HUES)]
        return self.palette[name]

    def _sync_cards(self) -> None:
        """One card per server (a cluster may have grown with add_server()), one per balancer, in its group."""
        known = {id(card.server) for card in self.cards}
        for i, t in enumerate(self.targets):
            cluster = t if isinstance(t, Cluster) else None
            row = list(self.group_rows[i].children)
            added = False
            for s in self._servers_of(t):
                if id(s) not in known:
                    self._colour(s.name)
                    card = ServerCard(s, cluster, self.runner, self.palette)
                    self.cards.append(card)
                    row.insert(sum(isinstance(c, ServerCard) for c in row), card)
                    known.add(id(s))
                    added = True
            if cluster is not None and not any(b.cluster is cluster for b in self.balancer_cards):
                card = BalancerCard(cluster, self.runner, self.palette)
                self.balancer_cards.append(card)
                row.append(card)
                added = True
            if cluster is not None and cluster.links and not any(n.cluster is cluster for n in self.network_cards):
                card = NetworkCard(cluster, self.runner)
                self.network_cards.append(card)
                row.append(card)
                added = True
            if added:
                self.group_rows[i].children = tuple(row)

    def shown_cards(self) -> list[W.Widget]:
        """Every card on screen, group by group."""
        return [card for row in self.group_rows for card in row.children]

    # --- keeping up with cells ---------------------------------------------------------------
    def _on_exchange(self, _exchange: Any) -> None:
        """A client of this dashboard sent a request (from a button or a cell): re-render, at most every
        ``REFRESH_EVERY`` seconds, and only from the kernel's main thread (widgets are not thread-safe)."""
        if not self._listening or threading.current_thread() is not threading.main_thread():
            return
        if time.monotonic() - self._last_refresh >= REFRESH_EVERY:
            self.refresh()

    def _after_cell(self) -> None:
        """A cell finished: whatever it did (requests from any client, a kill), show the state it left."""
        if self._listening:
            self.refresh()

    # --- what the dashboard is looking at --------------------------------------------------
    @property
    def active(self) -> int:
        return self.client_panel.active

    @property
    def client(self) -> Client:
        """The Client the buttons use right now."""
        return self.client_panel.client

    @property
    def target(self) -> Server | Cluster:
        """The Server or Cluster the buttons talk to right now."""
        return self.targets[self.client_panel.active if hasattr(self, "client_panel") else 0]

    # --- the view ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-render every part from the servers' and the clients' state (no request is sent)."""
        self._last_refresh = time.monotonic()
        self._sync_cards()
        for card in self.cards:
            card.refresh()
        for bcard in self.balancer_cards:
            bcard.refresh()
        for ncard in self.network_cards:
            ncard.refresh()
        self.client_panel.refresh()
        self.inspector.client, self.inspector.target = self.client, self.target
        self.inspector.refresh()
        self.history.client = self.client
        self.history.refresh()
        for i, (name, t) in enumerate(zip(self.names, self.targets, strict=True)):
            here = (f' &nbsp;<span style="border:1px solid {BORDER}; padding:0 6px; border-radius:9px">'
                    f'&#9664; the buttons talk to this one</span>') if i == self.active else ""
            self.group_headers[i].value = box(
                f'<b style="font-size:14px">{esc(name)}</b> <span style="color:{FG_DIM}">({esc(_what(t))})</span>'
                f'{here}', margin="4px 0 2px 0", border_bottom=f"1px solid {BORDER}")
        up = sum(bool(c.server.alive) for c in self.cards)
        what = self.names[0] if len(self.names) == 1 else f"{len(self.names)} designs"
        self.title.value = box(f'<b style="font-size:15px">statelab dashboard</b> &nbsp;'
                               f'<span style="color:{FG_DIM}">{esc(what)}'
                               f' &middot; {up}/{len(self.cards)} servers up</span>')

    def close(self) -> None:
        """Close every widget of the dashboard and the clients it created (servers keep running)."""
        self._listening = False
        for c in getattr(self, "clients", ()):
            if self._on_exchange in c.listeners:
                c.listeners.remove(self._on_exchange)
        for c in getattr(self, "_own_clients", ()):  # also reached from __del__ of a half-built one
            c.close()
        _close_tree(self)


#: How many of the newest dashboards re-render after each cell: re-running a dashboard's cell makes a new one, and
#: the old ones (still alive in ipywidgets' registry) need not cost every later cell a re-render.
WATCHED = 4
_watched: list[weakref.ref[Dashboard]] = []
_hooked: list[Any] = []  # the IPython shell whose post_run_cell event we listen to (once per kernel)


def _refresh_watched(*_args: Any) -> None:
    for ref in list(_watched):
        dash = ref()
        try:
            if dash is None:
                raise ReferenceError
            dash._after_cell()
        except Exception:  # a stale or closed dashboard must never break the learner's cell
            _watched.remove(ref)


def _watch_cells(dash: Dashboard) -> None:
    """Re-render ``dash`` after every cell (held weakly; only the ``WATCHED`` newest dashboards).
    No thread and no timer: the kernel calls us when a cell ends, so nothing is left running."""
    _watched.append(weakref.ref(dash))
    del _watched[:-WATCHED]
    if _hooked:
        return
    shell = kernel.shell()
    if shell is not None and hasattr(shell, "events"):
        shell.events.register("post_run_cell", _refresh_watched)
        _hooked.append(shell)


def _close_tree(widget: W.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    parts = [getattr(widget, "layout", None), getattr(widget, "style", None)]
    W.Widget.close(widget)
    for part in parts:
        if isinstance(part, W.Widget):
            part.close()


def dashboard(target: Target, client: Client | None = None) -> Dashboard:
    """Build the dashboard for a Server, a Cluster, a list of them, or a dict naming them (see :class:`Dashboard`)."""
    return Dashboard(target, client)
