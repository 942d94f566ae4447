"""The client's exchanges, newest first: method, path, status (or why there was none), the
server that answered, the time taken, and the error message or a short view of the answer.

Rows are tinted by outcome (2xx green, 4xx orange, no answer or 5xx red) and the server
that answered has its own stable colour, so a round-robin walk over three servers is visible.
"""

from __future__ import annotations

import json
from typing import Any

import ipywidgets as W

from ..client import Client, Exchange
from ._base import BORDER, FG_DIM, GREEN, GREY, MONO, ORANGE, RED, SOLID, box, esc, heading, server_chip

SHOW = 30  # the newest exchanges shown


def tint(ex: Exchange) -> str:
    """The row colour for an exchange: green 2xx/3xx, orange 4xx, red 5xx or no answer."""
    if ex.status is None or ex.status >= 500:
        return RED
    if ex.status >= 400:
        return ORANGE
    return GREEN if ex.status < 300 else GREY


def detail(ex: Exchange, limit: int = 90) -> str:
    """The error message of an answer, else a short look at its JSON (tokens left out)."""
    body = ex.body
    if isinstance(body, dict):
        if "error" in body:
            return str(body["error"])
        shown = {k: ("<token>" if k == "token" else v) for k, v in body.items()}
        text = json.dumps(shown, default=str, ensure_ascii=False)
    elif body is None or body == "":
        text = ""
    else:
        text = str(body)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def rows_html(exchanges: list[Exchange], palette: dict[str, int] | None = None, first_number: int = 1) -> str:
    """The table of ``exchanges`` (given oldest first), drawn newest first."""
    rows = []
    for n, ex in reversed(list(enumerate(exchanges, start=first_number))):
        colour = tint(ex)
        outcome = f"<b>{ex.status}</b>" if ex.status is not None else f"<b>failed</b>: {esc(ex.error)}"
        rows.append(
            f'<tr style="background:{colour}; border-left:4px solid {SOLID[colour]}">'
            f'<td style="padding:2px 6px; color:{FG_DIM}">{n}</td>'
            f'<td style="padding:2px 6px; font-family:{MONO}; white-space:nowrap">{esc(ex.method)} {esc(ex.path)}</td>'
            f'<td style="padding:2px 6px; white-space:nowrap">{outcome}</td>'
            f'<td style="padding:2px 6px">{server_chip(ex.served_by, palette)}</td>'
            f'<td style="padding:2px 6px; text-align:right; white-space:nowrap">{ex.ms:.1f} ms</td>'
            f'<td style="padding:2px 6px; font-size:11.5px; word-break:break-word">{esc(detail(ex))}</td></tr>')
    th = f"text-align:left; padding:2px 6px; white-space:nowrap; border-bottom:1px solid {BORDER}"
    head = "".join(f'<th style="{th}">{h}</th>'
                   for h in ("#", "request", "status", "served by", "time", "answer"))
    return (f'<table style="border-collapse:collapse; width:100%; font-size:12px">'
            f'<tr>{head}</tr>{"".join(rows)}</table>')


class History(W.VBox):
    """The newest ``SHOW`` exchanges of ``client``."""

    def __init__(self, client: Client, palette: dict[str, int] | None = None, show: int = SHOW) -> None:
        self.client = client
        self.palette = palette
        self.show = show
        self.table = W.HTML()
        key = W.HTML(legend(palette, list(palette or ())))
        super().__init__([W.HTML(heading("History (newest first)")), key, self.table],
                         layout=W.Layout(border=f"1px solid {BORDER}", padding="6px 10px", flex="1 1 520px",
                                         min_width="0", margin="0 8px 8px 0"))
        self.refresh()

    @property
    def exchanges(self) -> list[Exchange]:
        return self.client.history[-self.show:]

    def refresh(self) -> None:
        history = self.client.history
        shown = history[-self.show:]
        if not shown:
            self.table.value = box("no requests yet: press a button above", color=FG_DIM)
            return
        more = len(history) - len(shown)
        note = f'<div style="color:{FG_DIM}; font-size:11px">{more} older not shown</div>' if more else ""
        self.table.value = box(rows_html(shown, self.palette, first_number=more + 1) + note)


def legend(palette: dict[str, int] | None = None, names: Any = ()) -> str:
    """A one-line key: what the row colours and the server chips mean."""
    chips = " ".join(server_chip(n, palette) for n in names)
    return box(f'<span style="background:{GREEN}; padding:0 5px">2xx</span> '
               f'<span style="background:{ORANGE}; padding:0 5px">4xx</span> '
               f'<span style="background:{RED}; padding:0 5px">5xx / no answer</span> &nbsp; {chips}',
               font_size="11px")
