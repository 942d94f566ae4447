"""What every dashboard part shares: theme-aware colours, escaping, and the guarded button runner.

Colours are CSS variables of JupyterLab's theme (with fallbacks for a page outside JupyterLab)
and semi-transparent status tints, so the same markup reads on the light and the dark theme.
Widgets are updated by setting values only (``HTML.value``), never by ``with output:``
capture, so a test can drive them headless with ``button.click()``.
"""

from __future__ import annotations

import html
import json
import zlib
from collections.abc import Callable
from typing import Any

import ipywidgets as W

# JupyterLab theme variables, with a light-theme fallback for pages outside JupyterLab.
FG = "var(--jp-ui-font-color1, #1f1f1f)"
FG_DIM = "var(--jp-ui-font-color2, #616161)"
BG = "var(--jp-layout-color1, #ffffff)"
BG_ALT = "var(--jp-layout-color2, #eeeeee)"
BORDER = "var(--jp-border-color2, #c8c8c8)"
MONO = "var(--jp-code-font-family, monospace)"
FONT = "var(--jp-ui-font-family, system-ui, sans-serif)"

# Status tints: translucent, so they sit on either theme's background; text stays FG.
GREEN = "rgba(46, 160, 67, 0.22)"
ORANGE = "rgba(230, 140, 20, 0.26)"
RED = "rgba(220, 50, 47, 0.26)"
GREY = "rgba(128, 128, 128, 0.18)"
SOLID = {GREEN: "rgba(46, 160, 67, 0.9)", ORANGE: "rgba(230, 140, 20, 0.95)",
         RED: "rgba(220, 50, 47, 0.9)", GREY: "rgba(128, 128, 128, 0.7)"}

# Hues for servers, far enough apart to tell server-0 from server-1 at a glance.
HUES = (210, 30, 130, 280, 350, 60, 180, 250, 100, 320)


def esc(value: Any) -> str:
    """Text from a server, a cookie or a token, made safe to put inside HTML."""
    return html.escape("" if value is None else str(value), quote=True)


def as_json(value: Any, limit: int = 2000) -> str:
    """Pretty JSON for a ``<pre>``, escaped and cut at ``limit`` characters."""
    text = json.dumps(value, indent=2, default=str, ensure_ascii=False)
    if len(text) > limit:
        text = text[:limit] + "\n..."
    return esc(text)


def server_hue(name: str, palette: dict[str, int] | None = None) -> int:
    """A stable hue for a server name: the dashboard's own assignment, else a hash of the name."""
    if palette and name in palette:
        return palette[name]
    return HUES[zlib.crc32(name.encode()) % len(HUES)]


def server_chip(name: str | None, palette: dict[str, int] | None = None) -> str:
    """A small coloured label naming the server that answered (grey when nobody did)."""
    if not name:
        return f'<span style="color:{FG_DIM}">-</span>'
    hue = server_hue(name, palette)
    return (f'<span style="background:hsla({hue}, 75%, 55%, 0.28); border-left:4px solid hsl({hue}, 70%, 50%);'
            f' padding:0 6px; border-radius:3px; white-space:nowrap">{esc(name)}</span>')


def pill(text: str, tint: str) -> str:
    """A status pill: translucent tint, solid edge, theme text colour."""
    return (f'<span style="background:{tint}; border:1px solid {SOLID.get(tint, tint)}; color:{FG};'
            f' padding:0 7px; border-radius:9px; white-space:nowrap">{esc(text)}</span>')


def box(inner: str, **style: str) -> str:
    """A themed block of HTML: the dashboard's font and text colour, plus any extra style."""
    extra = "".join(f"; {k.replace('_', '-')}:{v}" for k, v in style.items())
    return f'<div style="font-family:{FONT}; color:{FG}; font-size:13px; line-height:1.45{extra}">{inner}</div>'


def heading(text: str) -> str:
    return (f'<div style="font-family:{FONT}; color:{FG}; font-weight:600; font-size:13px;'
            f' margin:2px 0 4px 0">{esc(text)}</div>')


def error_line(message: str) -> str:
    """A readable red line: what a button action could not do, instead of a traceback."""
    return box(f"&#9888; {esc(message)}", background=RED, border_left=f"4px solid {SOLID[RED]}",
               padding="3px 8px", border_radius="3px")


class Runner:
    """Runs a button's action so that nothing ever raises into the notebook.

    Each action runs, then ``refresh`` re-renders everything; an exception in either is shown
    as a red line in ``message`` (an HTML widget) rather than as a traceback.
    """

    def __init__(self, refresh: Callable[[], None], message: W.HTML | None = None) -> None:
        self.refresh = refresh
        self.message = message if message is not None else W.HTML("")
        self.last_error: str | None = None

    def run(self, action: Callable[[], Any], describe: Callable[[Any], str] | None = None) -> Any:
        """Call ``action()``, refresh, and show its outcome (``describe(result)``) or its error."""
        result = None
        self.last_error = None
        try:
            result = action()
        except Exception as e:  # a button must never raise into the notebook
            self._fail(f"{type(e).__name__}: {e}")
        else:
            self.message.value = describe(result) if describe else ""
        try:
            self.refresh()
        except Exception as e:
            self._fail(f"could not refresh the dashboard ({type(e).__name__}: {e})")
        return result

    def handler(self, action: Callable[[], Any], describe: Callable[[Any], str] | None = None
                ) -> Callable[[Any], None]:
        """A ``Button.on_click`` callback that runs ``action`` guarded."""
        def on_click(_button: Any = None) -> None:
            self.run(action, describe)
        return on_click

    def _fail(self, text: str) -> None:
        self.last_error = text
        self.message.value = error_line(text)


def button(description: str, tooltip: str, style: str = "", width: str = "auto") -> W.Button:
    return W.Button(description=description, tooltip=tooltip, button_style=style,
                    layout=W.Layout(width=width, min_width="72px"))


class SettingCard(W.VBox):
    """A card that shows what one part of a cluster is doing (``info``) and one control that sets one setting.

    A learner's change of the control is applied through a :class:`Runner` (an error becomes a red line, never a
    traceback); a value set from a cell is put back in the control by :meth:`show`, without being applied again.
    A subclass gives ``apply(value)``, which sets the value and returns the sentence to show, and ``refresh()``.
    With no ``runner`` of the dashboard's, the card shows its own message line.
    """

    def __init__(self, cluster: Any, control: W.ValueWidget, runner: Runner | None, layout: W.Layout) -> None:
        self.cluster = cluster
        self.info = W.HTML()
        self.control = control
        own_message = runner is None
        self.runner = runner or Runner(self.refresh)
        self._syncing = False
        control.observe(self._on_change, names="value")
        super().__init__([self.info, control, *([self.runner.message] if own_message else [])], layout=layout)
        self.refresh()

    def apply(self, value: Any) -> str:
        raise NotImplementedError

    def refresh(self) -> None:
        raise NotImplementedError

    def show(self, value: Any, **traits: Any) -> None:
        """Put ``value`` (and ``traits``, e.g. new options first) in the control when it was changed from a cell."""
        if self.control.value == value:
            return
        self._syncing = True
        try:
            for name, trait in traits.items():
                setattr(self.control, name, trait)
            self.control.value = value
        finally:
            self._syncing = False

    def _on_change(self, change: dict[str, Any]) -> None:
        if not self._syncing:
            value = change["new"]
            self.runner.run(lambda: self.apply(value), str)
