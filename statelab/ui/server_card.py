"""A card per server (name, mode, alive or down, sessions held, requests served, kill and restart),
and a card for a cluster's balancer (its routing strategy and how many requests each server got).

The buttons call exactly what a notebook cell would: ``cluster.kill(server)`` /
``cluster.restart(server)`` when the server is part of a cluster (so the balancer marks it up
again), else ``server.kill()`` / ``server.restart()``.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from ..shop.proxy import page_url
from ..topology.balancer import STRATEGIES
from ._base import BORDER, FG_DIM, GREEN, GREY, RED, SOLID, Runner, SettingCard, box, button, esc, pill, server_hue

CARD_WIDTH = "225px"


def page_link(service: Any) -> str:
    """A link that opens ``service``'s page (a Server, or a balancer) in a new browser tab: its own url on
    your machine, or through jupyter-server-proxy under JupyterHub/Binder (see :mod:`statelab.shop.proxy`)."""
    href = page_url(service)
    if href.startswith("http"):
        text, title = f"{esc(service.url)}/", "open this page in a new browser tab"
    else:
        text = "open its page (via Jupyter)"
        title = (f"{service.url} listens on the machine that runs this notebook, not on yours: "
                 "this link reaches it through Jupyter's proxy")
    return (f'<a href="{esc(href)}" target="_blank" rel="noopener noreferrer" title="{esc(title)}"'
            f' style="color:var(--jp-content-link-color, #1976d2); font-size:11px">{text}&nbsp;&#8599;</a>')


def _card_layout() -> W.Layout:
    return W.Layout(border=f"1px solid {BORDER}", padding="6px 8px", margin="0 8px 8px 0",
                    width=CARD_WIDTH, min_width=CARD_WIDTH, overflow="hidden")


class ServerCard(W.VBox):
    """One server: what it is, whether it is up, what it holds, and the buttons to crash it.

    ``cluster`` (optional) is the Cluster the server belongs to; ``runner`` runs the buttons'
    actions guarded and refreshes the dashboard (a card on its own refreshes itself).
    """

    def __init__(self, server: Any, cluster: Any = None, runner: Runner | None = None,
                 palette: dict[str, int] | None = None) -> None:
        self.server = server
        self.cluster = cluster
        self.palette = palette
        self.info = W.HTML()
        self.kill_button = button("Kill", f"crash {server.name}: it stops listening and loses its memory",
                                  "danger")
        self.restart_button = button("Restart", f"start {server.name} again on the same url, with empty memory",
                                     "success")
        own_message = runner is None
        self.runner = runner or Runner(self.refresh)
        self.kill_button.on_click(self.runner.handler(self.kill, lambda _: f"{esc(server.name)} killed"))
        self.restart_button.on_click(self.runner.handler(self.restart, lambda _: f"{esc(server.name)} restarted"))
        children: list[W.Widget] = [self.info, W.HBox([self.kill_button, self.restart_button])]
        if own_message:
            children.append(self.runner.message)
        super().__init__(children, layout=_card_layout())
        self.refresh()

    # --- the actions (the same calls a notebook cell would make) --------------------------
    def kill(self) -> None:
        if self.cluster is not None:
            self.cluster.kill(self.server)
        else:
            self.server.kill()

    def restart(self) -> None:
        if self.cluster is not None:
            self.cluster.restart(self.server)
        else:
            self.server.restart()

    # --- the view -------------------------------------------------------------------------
    def refresh(self) -> None:
        s = self.server
        alive = bool(s.alive)
        hue = server_hue(s.name, self.palette)
        state = pill("alive", GREEN) if alive else pill("down", RED)
        mode = esc(getattr(s, "mode", "?"))
        if alive:
            held = f"sessions held: <b>{s.sessions}</b>" if mode != "stateless" else "sessions held: 0 (stateless)"
            served = f"requests served: <b>{s.requests}</b>"
        else:
            held = "sessions held: -"
            served = "requests served: -"
        self.info.value = box(
            f'<div style="border-left:5px solid hsl({hue}, 70%, 50%); padding-left:6px">'
            f'<b style="font-size:14px">{esc(s.name)}</b> &nbsp;{state}<br>'
            f'<span style="color:{FG_DIM}">mode:</span> {mode}<br>{held}<br>{served}<br>'
            f'{page_link(s)}</div>'
        )
        self.layout.border = f"{'1px' if alive else '2px'} solid {BORDER if alive else SOLID[RED]}"
        self.kill_button.disabled = not alive


class BalancerCard(SettingCard):
    """A cluster's load balancer: the strategy (a dropdown that sets ``cluster.strategy``) and
    the number of requests it routed to each server (``cluster.balancer.counts``)."""

    def __init__(self, cluster: Any, runner: Runner | None = None, palette: dict[str, int] | None = None) -> None:
        self.palette = palette
        self.strategy_dropdown = W.Dropdown(options=_strategy_options(cluster.strategy), value=cluster.strategy,
                                            description="strategy", layout=W.Layout(width="195px"),
                                            style={"description_width": "56px"})
        super().__init__(cluster, self.strategy_dropdown, runner, _card_layout())

    def apply(self, strategy: Any) -> str:
        self.cluster.strategy = strategy
        return f"balancer strategy is now {esc(_strategy_label(strategy))}"

    def refresh(self) -> None:
        lb = self.cluster.balancer
        counts = lb.counts
        total = sum(counts.values()) or 1
        rows = []
        for name, n in counts.items():
            hue = server_hue(name, self.palette)
            width = round(100 * n / total)
            rows.append(
                f'<div style="display:flex; align-items:center; gap:4px; font-size:12px">'
                f'<span style="width:62px; overflow:hidden; text-overflow:ellipsis">{esc(name)}</span>'
                f'<span style="flex:1; background:{GREY}; height:9px; border-radius:2px">'
                f'<span style="display:block; width:{width}%; height:9px; border-radius:2px;'
                f' background:hsla({hue}, 70%, 50%, 0.75)"></span></span>'
                f'<span style="width:34px; text-align:right">{n}</span></div>')
        state = pill("alive", GREEN) if lb.alive else pill("down", RED)
        self.info.value = box(
            f'<b style="font-size:14px">{esc(lb.name)}</b> &nbsp;{state}<br>'
            f'<span style="color:{FG_DIM}">routed to each server:</span>'
            + "".join(rows)
            + page_link(lb)
        )
        strategy = self.cluster.strategy
        self.show(strategy, options=_strategy_options(strategy))  # when it was changed from a cell


def _strategy_label(strategy: Any) -> str:
    return strategy if isinstance(strategy, str) else f"{getattr(strategy, '__name__', 'function')}()"


def _strategy_options(current: Any) -> list[tuple[str, Any]]:
    """The named strategies, plus the cluster's own routing function when it has one (labs do)."""
    options: list[tuple[str, Any]] = [(name, name) for name in STRATEGIES]
    if not isinstance(current, str):
        options.append((_strategy_label(current), current))
    return options
