"""Every chart of the collection, one module per row: ``statelab.plots.<row>.plot(ev, ax=None)``.

Kept apart from the experiments so that measuring needs no matplotlib, and so that every chart
follows the same rules: meaning never by colour alone (labels, markers or hatches as well), and
axes that say their units.

A chart in a notebook is also an image a screen reader must be able to describe: in a Jupyter
kernel, :func:`show_alt_text` gives every matplotlib figure an HTML form, the same PNG in an
``<img>`` whose ``alt`` text (:func:`describe`) is read off the figure itself: its titles, axis
labels, legend entries and the words written on it. Importing this package changes nothing: every
``plot()`` here calls :func:`show_alt_text` when it draws (once per kernel; elsewhere it does nothing),
and a learner's own cell may call ``sl.plots.show_alt_text()`` for charts of their own.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from .. import kernel

HATCHES = ("", "//", "..", "xx")  # one per design: bars told apart by pattern too, never by colour alone


def panels(ax: Any, widths: tuple[float, ...], figsize: tuple[float, float], gap: float = 0.15) -> tuple[Any, list]:
    """A chart's row of panels, ``widths`` in proportion: ``(figure, [axes...])``.

    Alone (``ax`` None) it is a new figure of ``figsize``; inside a dashboard that hands the chart one ``ax``, the
    first panel is ``ax`` and the others are inset to its right, ``gap`` (of the first's width) apart.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, axes = plt.subplots(1, len(widths), figsize=figsize, gridspec_kw={"width_ratios": list(widths)})
        return fig, list(axes)
    axes, left = [ax], 0.0
    for i, width in enumerate(widths[1:], start=1):
        left += widths[i - 1] / widths[0] + gap
        axes.append(ax.inset_axes([left, 0, width / widths[0], 1]))
    return ax.figure, axes


def describe(fig: Any) -> str:
    """A text description of a matplotlib figure, from what it shows: titles, axes, legend, written values."""
    parts = []
    title = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else ""
    if title:
        parts.append(f"Chart: {title}.")
    for i, ax in enumerate(fig.axes, 1):
        if not ax.get_visible():
            continue
        bits = [f"Panel {i}" + (f": {ax.get_title()}" if ax.get_title() else "")]
        if ax.get_xlabel():
            bits.append(f"horizontal axis: {ax.get_xlabel()}")
        if ax.get_ylabel():
            bits.append(f"vertical axis: {ax.get_ylabel()}")
        legend = ax.get_legend()
        if legend is not None:
            bits.append("series: " + ", ".join(t.get_text() for t in legend.get_texts()))
        written = [" ".join(t.get_text().split()) for t in ax.texts if t.get_text().strip()]
        if written:
            bits.append("values written on it: " + "; ".join(written[:24]))
        parts.append("; ".join(bits) + ".")
    return " ".join(parts) or "A chart."


def figure_html(fig: Any) -> str | None:
    """The figure as an ``<img>`` with alt text (what a notebook shows); None if it has nothing drawn."""
    if not fig.axes:
        return None
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    _last_png[id(fig)] = buffer.getvalue()   # the PNG formatter, which runs next, reuses it
    data = base64.b64encode(buffer.getvalue()).decode()
    alt = html.escape(describe(fig), quote=True)
    return f'<img src="data:image/png;base64,{data}" alt="{alt}" style="max-width:100%">'


def show_alt_text() -> bool:
    """In a Jupyter kernel, display every matplotlib figure as HTML with alt text (the PNG stays as well).

    Opt-in, and idempotent: it changes the kernel's display formatters once, and returns whether they now
    describe figures (False outside a kernel, where there is nothing to change).
    """
    global _shown
    shell = kernel.shell()
    if shell is None:
        return False
    if _shown is shell:
        return True
    import matplotlib
    from matplotlib.figure import Figure

    if "inline" in str(matplotlib.get_backend()):
        # Load the inline backend now: when it loads, it clears every display formatter for Figure.
        import matplotlib_inline.backend_inline  # noqa: F401
    shell.display_formatter.formatters["text/html"].for_type(Figure, figure_html)
    png = shell.display_formatter.formatters["image/png"]
    render = png.type_printers.get(Figure)
    if render is not None:
        def png_once(fig: Any) -> Any:
            """The PNG the HTML form just rendered, instead of rendering the same figure twice."""
            cached = _last_png.pop(id(fig), None)
            return cached if cached is not None else render(fig)

        png.for_type(Figure, png_once)
    _shown = shell
    return True


#: the shell whose formatters show_alt_text changed (None: none yet)
_shown: Any = None
#: PNG bytes by figure id, from figure_html to the PNG formatter of the same display call.
_last_png: dict[int, bytes] = {}

