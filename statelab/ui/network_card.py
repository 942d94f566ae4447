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
from ._base import BORDER, FG_DIM, GREEN, ORANGE, RED, Runner, SettingCard, box, esc, pill

_TINT = {"up": GREEN, "hung": ORANGE, "cut": RED}


class NetworkCard(SettingCard):
    """The distance between a cluster's servers and its shared parts, settable, and what crossed each link."""

    def __init__(self, cluster: Any, runner: Runner | None = None) -> None:
        self.distance_box = W.BoundedFloatText(
            value=round((cluster.distance or 0) * 1000, 3), min=0, max=MAX_DISTANCE * 1000, step=0.1,
            description="distance (ms, one way)", style={"description_width": "140px"},
            layout=W.Layout(width="215px"),
            tooltip="how far the shared parts are from the servers; a round trip costs twice this")
        super().__init__(cluster, self.distance_box, runner,
                         W.Layout(border=f"1px solid {BORDER}", padding="6px 8px", margin="0 8px 8px 0",
                                  width="245px", min_width="245px"))

    def apply(self, ms: float) -> str:
        self.cluster.distance = ms / 1000
        return f"shared parts are now {ms:g} ms away (one way): {2 * ms:g} ms more for each trip a server makes to them"

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
        self.show(round((self.cluster.distance or 0) * 1000, 3))  # when it was changed from a cell
