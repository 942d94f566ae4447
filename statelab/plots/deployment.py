"""Row "Deployment Complexity": failed writes with and without connection draining, users logged out, key rotation."""

from __future__ import annotations

from typing import Any

from . import HATCHES, panels, show_alt_text


def plot(ev: Any, ax: Any = None) -> Any:
    """Left: plain writes failed (502) per design, without and with connection draining. Middle: users logged
    out by the deploy. Right: users logged out by each step of a signing-key rotation."""
    show_alt_text()  # a chart of ours in a notebook is described to a screen reader

    fig, (left, mid, right) = panels(ax, widths=(3, 3, 2.4), figsize=(11, 3.4))
    failed = ev.extra["failed_writes"]
    designs = list(failed["undrained"])
    n = ev.extra["users"]
    width = 0.2
    for i, design in enumerate(designs):
        xs = [0 + (i - 1.5) * width, 1 + (i - 1.5) * width]
        values = [failed["undrained"][design], failed["drained"][design]]
        bars = left.bar(xs, values, width, label=design, hatch=HATCHES[i], edgecolor="black", linewidth=0.5)
        left.bar_label(bars, fontsize=7, padding=1)
        lost = [100 * ev.extra["lost"]["undrained"][design] / n, 100 * ev.extra["lost"]["drained"][design] / n]
        bars = mid.bar(xs, lost, width, label=design, hatch=HATCHES[i], edgecolor="black", linewidth=0.5)
        mid.bar_label(bars, labels=[f"{v:.0f}" for v in lost], fontsize=7, padding=1)
    top = max([max(failed["undrained"].values()), 1])
    left.set_ylim(0, top * 1.6 + 1)
    left.set_xticks([0, 1], ["no draining", "connection\ndraining"], fontsize=8)
    left.set_ylabel("plain writes failed (502)")
    left.set_title("Rolling restart of 3 servers", fontsize=9)
    left.legend(fontsize=6, loc="upper right", frameon=False)
    mid.set_xticks([0, 1], ["no draining", "connection\ndraining"], fontsize=8)
    mid.set_ylabel("users logged out (%)")
    mid.set_ylim(0, 125)
    mid.set_yticks(range(0, 101, 20))
    mid.set_title("Who was logged out", fontsize=9)

    rot = ev.extra["rotation"]
    values = [100 * rot["drop"] / n, 100 * rot["grace"] / n, 100 * rot["retire_refreshed"] / max(rot["active"], 1),
              100 * rot["retire_idle"] / max(rot["idle"], 1)]
    labels = ["drop old\nkey", "keep old\nkey", "retire:\nre-signed", "retire:\nidle"]
    bars = right.bar(range(4), values, 0.6, color="tab:purple", edgecolor="black", linewidth=0.5)
    right.bar_label(bars, labels=[f"{v:.0f}" for v in values], fontsize=7, padding=1)
    right.set_xticks(range(4), labels, fontsize=7)
    right.set_ylabel("token users logged out (%)")
    right.set_ylim(0, 118)
    right.set_yticks(range(0, 101, 20))
    right.set_title("Signing-key rotation", fontsize=9)
    fig.tight_layout()
    return fig
