"""Row "Load balancing": who lost their session or cart per strategy and design, how even the load was for a small
and a large crowd, and where the users behind one NAT address went."""

from __future__ import annotations

import statistics
from typing import Any

#: A hatch per design, so bars differ by pattern as well as colour.
HATCHES = {"session + memory": "", "session + shared store": "//", "token + cart in token": "..",
           "token + cart in db": "xx"}


def plot(ev: Any, ax: Any = None) -> Any:
    """Three panels: users who lost something (one bar per design and strategy), load CV for the small and the
    large crowd, and each server's share of requests with users behind one NAT address (ip_hash and sticky)."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, (lost_ax, uneven_ax, nat_ax) = plt.subplots(1, 3, figsize=(15, 3.9))
    else:
        lost_ax, uneven_ax, nat_ax = ax
        fig = lost_ax.figure
    lost, uneven = ev.extra["share_lost"], ev.extra["unevenness"]
    designs = list(lost)
    strategies = list(next(iter(uneven.values())))
    width = 0.8 / len(designs)
    for k, design in enumerate(designs):
        xs = [i + (k - (len(designs) - 1) / 2) * width for i in range(len(strategies))]
        worst = [max(lost[design]["session"][s], lost[design]["cart"][s]) for s in strategies]
        lost_ax.bar(xs, worst, width, label=design, hatch=HATCHES.get(design, ""), edgecolor="black")
    lost_ax.set_xticks(range(len(strategies)))
    lost_ax.set_xticklabels(strategies, fontsize=8)
    lost_ax.set_xlabel("balancer strategy")
    lost_ax.set_ylabel("users who lost their session or cart")
    lost_ax.set_ylim(0, 1.05)
    lost_ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    lost_ax.set_title("Who lost their session or cart?")
    lost_ax.legend(fontsize=7, loc="upper right")

    crowds = ev.extra["crowds"]
    small = [statistics.fmean(uneven[d][s] for d in designs) for s in strategies]
    large = ev.extra["large_cv"]
    xs = range(len(strategies))
    uneven_ax.bar([x - 0.2 for x in xs], small, 0.4, label=f"{crowds['small']['users']} users", edgecolor="black")
    big = [(x, large[s]) for x, s in zip(xs, strategies, strict=True) if s in large]
    uneven_ax.bar([x + 0.2 for x, _ in big], [v for _, v in big], 0.4, hatch="//", edgecolor="black",
                  label=f"{crowds['large']['users']} users")
    uneven_ax.set_xticks(list(xs))
    uneven_ax.set_xticklabels(strategies, fontsize=8)
    uneven_ax.set_xlabel("balancer strategy")
    uneven_ax.set_ylabel("load unevenness (CV; 0 = even)")
    uneven_ax.set_title("How even? A small crowd against a large one")
    uneven_ax.legend(fontsize=7)

    nat = ev.extra["nat"]
    for k, (strategy, hatch) in enumerate((("ip_hash", ""), ("sticky", ".."))):
        counts = nat[strategy]["requests per server"]
        total = sum(counts.values()) or 1
        names = sorted(counts)
        nat_ax.bar([i + (k - 0.5) * 0.4 for i in range(len(names))], [counts[n] / total for n in names], 0.4,
                   hatch=hatch, edgecolor="black", label=strategy)
    names = sorted(nat["ip_hash"]["requests per server"])
    nat_ax.axhline(1 / len(names), color="grey", linewidth=1, linestyle="--", label="an even share")
    nat_ax.set_xticks(range(len(names)))
    nat_ax.set_xticklabels(names, fontsize=8)
    nat_ax.set_ylabel("share of the requests")
    nat_ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    nat_ax.set_title("Half the users behind one NAT address")
    nat_ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
