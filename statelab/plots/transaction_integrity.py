"""Row "Transaction Integrity": updates kept and lost per cart placement, orders made by a repeated confirm."""

from __future__ import annotations

from typing import Any

from . import panels, show_alt_text


def plot(ev: Any, ax: Any = None) -> Any:
    """Left: concurrent adds kept vs lost, per case. Right: orders made by a retry and by a double-click."""
    show_alt_text()  # a chart of ours in a notebook is described to a screen reader

    fig, (left, right) = panels(ax, widths=(1, 1), figsize=(11, 3.6), gap=0.3)
    lost = ev.extra["lost"]
    names = list(lost)
    kept = [lost[n]["books in cart"] for n in names]
    gone = [lost[n]["lost"] for n in names]
    ys = range(len(names))
    left.barh(ys, kept, color="tab:green", label="kept", edgecolor="black", linewidth=0.5)
    left.barh(ys, gone, left=kept, color="tab:red", hatch="//", label="lost", edgecolor="black", linewidth=0.5)
    for y, k, g in zip(ys, kept, gone, strict=True):
        left.text(k + g, y, f" {k} kept, {g} lost", va="center", fontsize=7)
    left.set_yticks(list(ys), names, fontsize=7)
    left.invert_yaxis()
    left.set_xlabel("concurrent adds to one cart (8 tabs)")
    left.set_title("Lost updates", fontsize=9)
    left.set_xlim(0, max(k + g for k, g in zip(kept, gone, strict=True)) * 1.9 or 1)
    left.legend(fontsize=7, loc="lower right")

    cases = list(ev.extra["retry"])
    retry = [ev.extra["retry"][c]["orders"] for c in cases]
    double = [max(ev.extra["double"][c]) for c in cases]
    ys = range(len(cases))
    # Horizontal bars: the case names are long; on an x axis they collided even at a 6-point font.
    bars = right.barh([y - 0.2 for y in ys], retry, 0.4, label="retried confirm", color="tab:blue",
                      edgecolor="black", linewidth=0.5)
    right.bar_label(bars, fontsize=8, padding=2)
    bars = right.barh([y + 0.2 for y in ys], double, 0.4, label="double-click (worst try)", color="tab:purple",
                      hatch="..", edgecolor="black", linewidth=0.5)
    right.bar_label(bars, fontsize=8, padding=2)
    right.axvline(1, color="grey", lw=0.8, ls="--")
    right.set_yticks(list(ys), cases, fontsize=8)
    right.invert_yaxis()
    right.set_xlabel("orders created (one is right)")
    right.set_xticks([0, 1, 2])
    right.set_xlim(0, 2.6)
    right.set_title("One checkout, confirmed twice", fontsize=9)
    right.legend(fontsize=7, loc="lower right", frameon=False)
    fig.tight_layout()
    return fig
