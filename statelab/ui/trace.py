"""``sl.ui.trace(exchange or client, last=N)``: traced exchanges drawn as a Mermaid sequence diagram.

The drawing comes only from what :mod:`statelab.trace` recorded while the requests ran: each arrow is a
hop that happened, labelled with its outcome and its measured time. It renders as Markdown with a
``mermaid`` fence, which JupyterLab draws itself and the book's build turns into a diagram the vendored
mermaid.js draws (tools/build_book.py). The trace's text, one line per hop, is the diagram's accessible
description (``accDescr``) and the plain-text version of the output, so a screen reader, a terminal and
CI's logs get the same facts as the picture.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..trace import RECORDER, Hop, describe


def trace(target: Any, last: int | None = None, title: str | None = None, *, together: bool = False) -> TraceView:
    """Draw the last ``last`` traced exchanges of ``target``: an Exchange, a list of them (all, by default), or a
    Client (its last one by default; only its traced requests count: ``Client(url, traced=True)``).

    ``together=True`` draws exchanges that ran at the same time on one timeline, their clients named
    "tab 1", "tab 2", ...: how two requests interleave at the server and its store."""
    if isinstance(target, (list, tuple)):
        exchanges = list(target)
    elif hasattr(target, "history"):
        exchanges = [ex for ex in target.history if getattr(ex, "trace_id", None)]
    else:
        exchanges = [target]
    if last is None:
        last = len(exchanges) if isinstance(target, (list, tuple)) else 1
    if isinstance(last, bool) or not isinstance(last, int) or last < 1:
        raise ValueError(f"last must be a whole number of exchanges, 1 or more; not {last!r}")
    traced = [ex for ex in exchanges if getattr(ex, "trace_id", None)]
    traced = traced if together else traced[-last:]
    if not traced:
        raise ValueError("nothing traced to draw: send the requests with a traced client, "
                         "sl.Client(url, traced=True), or set client.traced = True first")
    return TraceView([RECORDER.hops(ex.trace_id) for ex in traced], title, together=together)


def _resolve(hops: list[Hop]) -> list[Hop]:
    """Name the part that answered each hop whose sender did not know it (a client asks a url; a cache asks
    whatever is behind it): the next part that recorded work for this trace, after the hop began."""
    for i, h in enumerate(hops):
        if h.target is None:
            later = [x for x in hops[i + 1:] if x.source != h.source and x.start >= h.start]
            h.target = later[0].source if later else "server"
    return hops


def _clean(text: object) -> str:
    """Text Mermaid reads literally (``;`` ``#`` and braces have meanings there), on one line."""
    out = str(text).replace("\n", " ").replace(";", ",").replace("#", "no. ").replace("{", "(").replace("}", ")")
    return out.replace("-->>", "to").replace("->>", "to")


#: outcomes that are no answer at all, drawn as a crossed arrow (``--x``)
NO_ANSWER = ("refused", "cut", "failed", "connection", "timed", "broken")


def _short(text: str, limit: int = 110) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


class TraceView:
    """What ``sl.ui.trace`` returns: Markdown with a Mermaid ``sequenceDiagram`` and its text (``str()``)."""

    def __init__(self, traces: list[list[Hop]], title: str | None = None, *, together: bool = False) -> None:
        self.traces = [_resolve([replace(h) for h in t]) for t in traces]
        asked = ", ".join(t[0].what for t in self.traces if t)
        resent = ", with a re-send" if any(h.resent for t in self.traces for h in t) else ""
        self.title = title or f"Trace of {asked}{resent}"
        if together and len(self.traces) > 1:  # one timeline: each client is a tab, each hop says whose it is
            for n, hops in enumerate(self.traces, 1):
                for h in hops:
                    h.source, h.target = [f"tab {n}" if who == "client" else who for who in (h.source, h.target)]
                    if h.source != f"tab {n}":
                        h.what = f"{h.what} [tab {n}]"
            self.traces = [sorted((h for t in self.traces for h in t), key=lambda h: h.start)]
            self.title = title or f"Trace of {asked}, at the same time"

    @property
    def hops(self) -> list[Hop]:
        return [h for t in self.traces for h in t]

    @property
    def resends(self) -> list[Hop]:
        return [h for h in self.hops if h.resent]

    def text(self) -> str:
        parts = []
        for n, hops in enumerate(self.traces, 1):
            head = f"Exchange {n}:" if len(self.traces) > 1 else ""
            parts.append("\n".join(([head] if head else []) + describe(hops)))
        return "\n".join(parts)

    def mermaid(self) -> str:
        names: list[str] = []
        for h in self.hops:
            for who in (h.source, h.target):
                if who and who not in names:
                    names.append(who)
        names.sort(key=lambda who: (0, who) if who == "client" or who.startswith("tab ") else (1, ""))  # stable
        ids = {who: f"p{i}" for i, who in enumerate(names)}
        lines = ["sequenceDiagram", f"    accTitle: {_clean(self.title)}",
                 "    accDescr {", *(f"        {_clean(line)}" for line in self.text().splitlines()), "    }"]
        lines += [f"    participant {ids[who]} as {_clean(who)}" for who in names]
        for n, hops in enumerate(self.traces, 1):
            if len(self.traces) > 1:
                lines.append(f"    Note over {ids[names[0]]}: exchange {n}")
            events: list[tuple[float, int, str]] = []
            for i, h in enumerate(hops):
                a, b = ids[h.source], ids[h.target or h.source]
                if h.note:
                    events.append((h.end, i, f"    Note over {a}: {_clean(h.what)} finished: "
                                            f"{_clean(h.outcome)}, {h.ms:.1f} ms"))
                    continue
                again = " (re-sent)" if h.resent else ""
                events.append((h.start, i, f"    {a}->>{b}: {_clean(h.what)}{again}"))
                arrow = "-->>" if isinstance(h.outcome, int) or not str(h.outcome).startswith(NO_ANSWER) else "--x"
                detail = f" ({_clean(_short(h.detail))})" if h.detail else ""
                events.append((h.end, -1000 + i, f"    {b}{arrow}{a}: {_clean(h.outcome)}, {h.ms:.1f} ms{detail}"))
            lines += [line for _, _, line in sorted(events, key=lambda e: (e[0], e[1]))]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return f"```mermaid\n{self.mermaid()}\n```\n"

    def __str__(self) -> str:
        return self.text()

    def __repr__(self) -> str:
        return self.text()
