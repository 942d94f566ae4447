"""Notebook 12's chart: the four designs side by side on the axes that are shares of a whole."""

from __future__ import annotations

from typing import Any

from . import HATCHES, show_alt_text


def plot(ev: Any, ax: Any = None) -> Any:
    """Grouped bars, one group per axis and one hatched, labelled bar per design, each bar's value written on it."""
    import matplotlib.pyplot as plt
    show_alt_text()  # a chart of ours in a notebook is described to a screen reader

    m = ev.measurements
    designs = list(m["lost_on_crash"])
    groups = {
        "carts lost\nin a crash": {d: m["lost_on_crash"][d] / m["users"] for d in designs},
        "reads that find the cart\n(round robin)": m["found_share_round_robin"],
        "stolen credential\naccepted after logout": {d: m["replays_accepted_after_logout"][d] / m["replays"]
                                                     for d in designs},
        "cart follows to\na second device": {d: float(m["cart_follows_to_second_device"][d]) for d in designs},
    }
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.6, 3.4))
    else:
        fig = ax.figure
    width = 0.8 / len(designs)
    for i, design in enumerate(designs):
        xs = [j + (i - (len(designs) - 1) / 2) * width for j in range(len(groups))]
        bars = ax.bar(xs, [groups[g][design] for g in groups], width, label=design,
                      hatch=HATCHES[i % len(HATCHES)], edgecolor="black", linewidth=0.6)
        ax.bar_label(bars, labels=[f"{groups[g][design]:.0%}" for g in groups], fontsize=7, padding=1)
    ax.set_xticks(range(len(groups)), list(groups), fontsize=8)
    ax.set_ylim(0, 1.25)
    ax.set_ylabel("share of users or reads")
    ax.set_title("Four designs, same crash, same thief, same second device")
    ax.legend(fontsize=7, loc="upper center", ncols=len(designs), frameon=False)
    fig.tight_layout()
    return fig
