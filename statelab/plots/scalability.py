"""Row "Scalability": who finds their session as servers are added, and what each shared data tier's writer does."""

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
    """Left: share of requests that found their session against servers. Right: writes and reads of each data tier."""
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
        tiers = ev.extra["tiers"]
        for (tier, kind), (marker, line) in {("cart table", "writes"): ("o", "-"), ("cart table", "reads"): ("s", "--"),
                                             ("session store", "writes"): ("^", "-."),
                                             ("session store", "reads"): ("v", ":")}.items():
            rates = tiers[tier][kind]
            right.plot(sizes, [rates[n] for n in sizes], marker=marker, linestyle=line, label=f"{tier}: {kind}/s")
        ceiling = 1 / ev.extra["hold"]
        right.axhline(ceiling, color="grey", linewidth=1, linestyle=":", label="one writer's ceiling (1/hold)")
        right.set_xlabel("servers using the shared data tier at once")
        right.set_ylabel("operations per second")
        right.set_xticks(sizes)
        top = max(max(tiers[t][k].values()) for t in tiers for k in ("writes", "reads"))
        right.set_ylim(0, max(top, ceiling) * 1.15)
        right.set_title("The shared data tier: one writer at a time")
        right.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
