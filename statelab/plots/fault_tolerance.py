"""Row "Fault Tolerance": who lost the cart, which requests failed, and how long a killed or a hung server made
a read wait, per design."""

from __future__ import annotations

from typing import Any

from . import HATCHES, panels, show_alt_text


def plot(ev: Any, ax: Any = None) -> Any:
    """Left: users without their cart after the crash and during the store outage, per design.
    Middle: failed requests during the crash, by kind (read, plain write, keyed write), per design.
    Right: the longest a read waited when server-1 was killed, against the shortest wait of a read that
    failed when it hung, beside the balancer's timeout (the production design of each half)."""
    show_alt_text()  # a chart of ours in a notebook is described to a screen reader

    fig, (left, right, waits) = panels(ax, widths=(3, 3, 2), figsize=(12.5, 3.4), gap=0.2)
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

    hung, killed = ev.extra.get("hung", {}), ev.extra.get("killed", {})
    timeout_ms = 1000 * ev.measurements.get("balancer timeout (s)", 0)
    for j, design in enumerate(hung):
        values = [1000 * killed[design]["slowest_s"], 1000 * hung[design]["failed_min_s"]]
        xs = [k + (j - 0.5) * width for k in range(2)]
        bars = waits.bar(xs, values, width, label=design, hatch=HATCHES[designs.index(design)], edgecolor="black",
                         linewidth=0.5, color=f"C{designs.index(design)}")
        waits.bar_label(bars, labels=[f"{v:.0f}" for v in values], fontsize=7, padding=1)
    waits.axhline(timeout_ms, linestyle="--", color="black", linewidth=0.8)
    waits.text(-0.4, timeout_ms * 1.03, f"balancer timeout {timeout_ms:.0f} ms", fontsize=7, va="bottom", ha="left")
    waits.set_xticks([0, 1], ["killed:\nslowest read", "hung: quickest\nfailed read"], fontsize=8)
    waits.set_ylabel("wait (ms)")
    waits.set_ylim(0, max(timeout_ms, 1) * 1.6)
    waits.set_title("A kill fails fast; a hang waits", fontsize=9)
    fig.tight_layout()
    return fig
