"""The dashboard: server cards, the learner's browser, what it holds, and what it saw.

``dashboard(target)`` takes a :class:`~statelab.shop.server.Server`, a
:class:`~statelab.topology.cluster.Cluster`, or a list of Servers (one client each, and a toggle to pick
which one the buttons talk to). Every button calls the public API a cell would call, then
the whole dashboard re-renders from the objects' state. Nothing here raises into the
notebook: a failing action becomes a red line under the buttons.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as W

from ..client import Client
from ..shop.server import Server
from ..topology.cluster import Cluster
from ._base import FG_DIM, HUES, Runner, box, esc
from .client_panel import ClientPanel
from .history import History
from .inspector import Inspector
from .network_card import NetworkCard
from .server_card import BalancerCard, ServerCard

Target = Server | Cluster | Sequence[Server]


def _targets(target: Any) -> list[Server | Cluster]:
    if isinstance(target, (Server, Cluster)):
        return [target]
    if isinstance(target, (list, tuple)) and target and all(isinstance(t, (Server, Cluster)) for t in target):
        return list(target)
    raise TypeError("dashboard(target): target must be a Server (sl.serve(...)), a Cluster (sl.Cluster(...)) "
                    f"or a list of Servers, not {type(target).__name__}")


def _label(t: Server | Cluster) -> str:
    if isinstance(t, Cluster):
        return f"cluster ({t.mode}, {len(t.servers)} servers)"
    return t.name if t.mode in t.name else f"{t.name} ({t.mode})"


class Dashboard(W.VBox):
    """The widget ``dashboard()`` returns. ``.client`` is the Client its buttons use right now;
    ``.refresh()`` re-renders everything from the servers' and the client's state."""

    def __init__(self, target: Target, client: Client | None = None) -> None:
        self.targets = _targets(target)
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
        self.cards_box = W.HBox(layout=W.Layout(flex_flow="row wrap", align_items="stretch"))
        self._sync_cards()

        self.client_panel = ClientPanel(self.clients, [_label(t) for t in self.targets], self.runner)
        self.inspector = Inspector(self.client, self.target)
        self.history = History(self.client, self.palette)
        self.title = W.HTML()
        super().__init__([
            self.title,
            self.cards_box,
            self.client_panel,
            self.message,
            W.HBox([self.inspector, self.history], layout=W.Layout(flex_flow="row wrap", align_items="flex-start")),
        ], layout=W.Layout(width="100%", max_width="1400px"))
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
        """One card per server (a cluster may have grown with add_server()), one per balancer."""
        known = {id(card.server) for card in self.cards}
        added = False
        for t in self.targets:
            cluster = t if isinstance(t, Cluster) else None
            if cluster is not None and not any(b.cluster is cluster for b in self.balancer_cards):
                self.balancer_cards.append(BalancerCard(cluster, self.runner, self.palette))
                added = True
            if cluster is not None and cluster.links and not any(n.cluster is cluster for n in self.network_cards):
                self.network_cards.append(NetworkCard(cluster, self.runner))
                added = True
            for s in self._servers_of(t):
                if id(s) not in known:
                    self._colour(s.name)
                    self.cards.append(ServerCard(s, cluster, self.runner, self.palette))
                    known.add(id(s))
                    added = True
        if added:
            self.cards_box.children = tuple(self.cards) + tuple(self.balancer_cards) + tuple(self.network_cards)

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
        up = sum(bool(c.server.alive) for c in self.cards)
        self.title.value = box(f'<b style="font-size:15px">statelab dashboard</b> &nbsp;'
                               f'<span style="color:{FG_DIM}">{esc(" + ".join(_label(t) for t in self.targets))}'
                               f' &middot; {up}/{len(self.cards)} servers up</span>')

    def close(self) -> None:
        """Close every widget of the dashboard and the clients it created (servers keep running)."""
        for c in getattr(self, "_own_clients", ()):  # also reached from __del__ of a half-built one
            c.close()
        _close_tree(self)


def _close_tree(widget: W.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    parts = [getattr(widget, "layout", None), getattr(widget, "style", None)]
    W.Widget.close(widget)
    for part in parts:
        if isinstance(part, W.Widget):
            part.close()


def dashboard(target: Target, client: Client | None = None) -> Dashboard:
    """Build the dashboard for a Server, a Cluster, or a list of Servers (see :class:`Dashboard`)."""
    return Dashboard(target, client)
