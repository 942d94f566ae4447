"""Row "Scalability": who finds their session as servers are added, and what the shared table's writer does."""

from __future__ import annotations

from typing import Any

#: Marker, line style and marker size per set-up: the lines of the set-ups that keep every session overlap
#: at 100%, so shrinking markers keep each one visible; never colour alone.
STYLES = {
    "session + memory, round robin": ("o", "-", 6),
    "session + memory, sticky": ("s", "--", 12),
    "session + shared store": ("^", "--", 10),
    "token + cart in token": ("d", ":", 7),
    "token + cart in db": ("x", "-.", 5),
}


def plot(ev: Any, ax: Any = None) -> Any:
    """Left: share of requests that found their session against servers. Right: shared-table writes and reads."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    else:
        left, right = ax if isinstance(ax, (list, tuple)) else (ax, None)
        fig = left.figure
    sizes = ev.extra["sizes"]
    for label, shares in ev.extra["found"].items():
        marker, line, size = STYLES.get(label, ("o", "-", 6))
        measured = [n for n in sizes if n in shares]
        left.plot(measured, [shares[n] for n in measured], marker=marker, linestyle=line, markersize=size,
                  label=label)
    left.plot(sizes, [1 / n for n in sizes], color="grey", linewidth=1, linestyle="--", label="1/N")
    left.set_xlabel("servers behind the balancer (N)")
    left.set_ylabel("requests that found their session")
    left.set_xticks(sizes)
    left.set_ylim(0, 1.05)
    left.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    left.set_title("Affinity: who finds their session?")
    left.legend(fontsize=7, loc="center right")
    if right is not None:
        writer = ev.extra["writer"]
        for kind, marker, line in (("writes", "o", "-"), ("reads", "s", "--")):
            right.plot(sizes, [writer[kind][n] for n in sizes], marker=marker, linestyle=line,
                       label=f"cart {kind} per second")
        ceiling = 1000 / ev.measurements["work per cart request in that test (ms)"]
        right.axhline(ceiling, color="grey", linewidth=1, linestyle=":", label="one writer's ceiling")
        right.set_xlabel("servers using the shared cart table at once")
        right.set_ylabel("requests per second")
        right.set_xticks(sizes)
        right.set_ylim(0, max(max(writer["reads"].values()), ceiling) * 1.15)
        right.set_title("The shared table: one writer at a time")
        right.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig
