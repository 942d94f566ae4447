"""A card for the network between a cluster's servers and its shared parts: the distance, and each link.

Shown by the dashboard for a cluster built with ``distance=`` (one that has links). The distance box
sets ``cluster.distance`` (milliseconds here, because that is how people say it; seconds in code), so
a learner can move the store farther away while requests flow and watch every answer slow down. Each
link's state is written in words ("up", "hung", "cut"), not shown by colour alone.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as W

from ..topology.cluster import MAX_DISTANCE
from ._base import BORDER, FG_DIM, GREEN, ORANGE, RED, Runner, box, esc, pill

_TINT = {"up": GREEN, "hung": ORANGE, "cut": RED}


class NetworkCard(W.VBox):
    """The distance between a cluster's servers and its shared parts, settable, and what crossed each link."""

    def __init__(self, cluster: Any, runner: Runner | None = None) -> None:
        self.cluster = cluster
        self.info = W.HTML()
        self.distance_box = W.BoundedFloatText(
            value=round((cluster.distance or 0) * 1000, 3), min=0, max=MAX_DISTANCE * 1000, step=0.1,
            description="distance (ms, one way)", style={"description_width": "140px"},
            layout=W.Layout(width="215px"),
            tooltip="how far the shared parts are from the servers; a round trip costs twice this")
        own_message = runner is None
        self.runner = runner or Runner(self.refresh)
        self._syncing = False
        self.distance_box.observe(self._on_distance, names="value")
        children: list[W.Widget] = [self.info, self.distance_box]
        if own_message:
            children.append(self.runner.message)
        super().__init__(children, layout=W.Layout(border=f"1px solid {BORDER}", padding="6px 8px",
                                                   margin="0 8px 8px 0", width="245px", min_width="245px"))
        self.refresh()

    def _on_distance(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        ms = change["new"]

        def apply() -> None:
            self.cluster.distance = ms / 1000
        self.runner.run(apply, lambda _: f"shared parts are now {ms:g} ms away (one way): "
                                         f"{2 * ms:g} ms more for each trip a server makes to them")

    def refresh(self) -> None:
        rows = []
        for link in self.cluster.links:
            state = link.state
            rows.append(
                f'<div style="font-size:12px">{esc(link.name)} &nbsp;{pill(state, _TINT.get(state, ORANGE))}'
                f' <span style="color:{FG_DIM}">{link.round_trips} round trips</span></div>')
        self.info.value = box(
            '<b style="font-size:14px">network to shared parts</b><br>'
            f'<span style="color:{FG_DIM}">a round trip costs twice the distance</span>' + "".join(rows))
        ms = round((self.cluster.distance or 0) * 1000, 3)
        if self.distance_box.value != ms:  # changed from a cell
            self._syncing = True
            try:
                self.distance_box.value = ms
            finally:
                self._syncing = False
