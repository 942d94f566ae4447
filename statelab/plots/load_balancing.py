"""Row "Load balancing": per strategy and design, who lost their session or cart, and how even the load was."""

from __future__ import annotations

from typing import Any

#: A hatch per design, so bars differ by pattern as well as colour.
HATCHES = {"session + memory": "", "session + shared store": "//", "token + cart in token": "..",
           "token + cart in db": "xx"}


def plot(ev: Any, ax: Any = None) -> Any:
    """Two panels of grouped bars, one group per strategy, one bar per design (hatched)."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, (lost_ax, uneven_ax) = plt.subplots(1, 2, figsize=(12, 3.8))
    else:
        lost_ax, uneven_ax = ax
        fig = lost_ax.figure
    lost, uneven = ev.extra["share_lost"], ev.extra["unevenness"]
    designs = list(lost)
    strategies = list(next(iter(uneven.values())))
    width = 0.8 / len(designs)
    for k, design in enumerate(designs):
        xs = [i + (k - (len(designs) - 1) / 2) * width for i in range(len(strategies))]
        worst = [max(lost[design]["session"][s], lost[design]["cart"][s]) for s in strategies]
        hatch = HATCHES.get(design, "")
        lost_ax.bar(xs, worst, width, label=design, hatch=hatch, edgecolor="black")
        uneven_ax.bar(xs, [uneven[design][s] for s in strategies], width, label=design, hatch=hatch,
                      edgecolor="black")
    for axis in (lost_ax, uneven_ax):
        axis.set_xticks(range(len(strategies)))
        axis.set_xticklabels(strategies)
        axis.set_xlabel("balancer strategy")
    lost_ax.set_ylabel("users who lost their session or cart")
    lost_ax.set_ylim(0, 1.05)
    lost_ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    lost_ax.set_title("Who lost their session or cart?")
    lost_ax.legend(fontsize=7, loc="upper right")
    uneven_ax.set_ylabel("load unevenness (CV; 0 = even)")
    uneven_ax.set_title("How even was the load? (same skewed traffic)")
    fig.tight_layout()
    return fig
