"""Row "Fault Tolerance": who lost the cart, and which requests failed, per design."""

from __future__ import annotations

from typing import Any

HATCHES = ("", "//", "..", "xx")


def plot(ev: Any, ax: Any = None) -> Any:
    """Left: users without their cart after the crash and during the store outage, per design.
    Right: failed requests during the crash, by kind (read, plain write, keyed write), per design."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    else:
        fig, left, right = ax.figure, ax, ax.inset_axes([1.2, 0, 1, 1])
    n = ev.extra["users"]
    designs = list(ev.extra["lost"])
    groups = ["lost in the crash", "store outage"]
    width = 0.2
    for i, design in enumerate(designs):
        outage = ev.extra["outage"].get(design)
        values = [100 * ev.extra["lost"][design] / n, float("nan") if outage is None else 100 * outage / n]
        xs = [g + (i - 1.5) * width for g in range(len(groups))]
        bars = left.bar(xs, [0 if v != v else v for v in values], width, label=design, hatch=HATCHES[i],
                        edgecolor="black", linewidth=0.5)
        left.bar_label(bars, labels=["no shared store" if v != v else f"{v:.0f}" for v in values], fontsize=7,
                       padding=1, rotation=90)
    left.set_xticks(range(len(groups)), groups, fontsize=8)
    left.set_ylabel("users without their cart (%)")
    left.set_ylim(0, 160)
    left.set_yticks(range(0, 101, 20))
    left.set_title(f"{ev.extra['crashed']} crashes, then the shared stores go down", fontsize=9)
    left.legend(fontsize=7, loc="upper center", ncol=2, frameon=False)

    kinds = ["read", "write", "keyed write"]
    for i, design in enumerate(designs):
        values = [ev.extra["failed"][design][k] for k in kinds]
        xs = [k + (i - 1.5) * width for k in range(len(kinds))]
        bars = right.bar(xs, values, width, label=design, hatch=HATCHES[i], edgecolor="black", linewidth=0.5)
        right.bar_label(bars, fontsize=7, padding=1)
    right.set_xticks(range(len(kinds)), ["reads\n(re-sent)", "plain writes\n(502)", "keyed writes\n(re-sent)"],
                     fontsize=8)
    right.set_ylabel("failed requests during the crash")
    top = max([max(ev.extra["failed"][d].values()) for d in designs] + [1])
    right.set_ylim(0, top * 1.5 + 1)
    right.set_title("Which requests failed", fontsize=9)
    fig.tight_layout()
    return fig
