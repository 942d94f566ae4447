"""Row "Resource usage": where each design keeps the state (server memory, shared files) and what the client carries."""

from __future__ import annotations

from typing import Any

#: Marker and line style per design: never colour alone.
STYLES = {
    "session + memory": ("o", "-"),
    "session + shared store": ("^", "--"),
    "token + cart in token": ("d", ":"),
    "token + cart in db": ("x", "-."),
}


def plot(ev: Any, ax: Any = None) -> Any:
    """Three panels: server memory against users, shared files against users, cookie bytes against cart lines."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    else:
        axes = list(ax) if isinstance(ax, (list, tuple)) else [ax]
        fig = axes[0].figure
    users = ev.extra["users"]
    memory = axes[0]
    for design, held in ev.extra["held"].items():
        marker, line = STYLES.get(design, ("o", "-"))
        memory.plot(users, [b / 1e6 for b in held], marker=marker, linestyle=line, label=design)
    memory.set_xlabel("users logged in")
    memory.set_ylabel("server memory held (MB)")
    memory.set_title("The server's own memory")
    memory.legend(fontsize=7)
    if len(axes) > 1:
        files = axes[1]
        for design, stored in ev.extra["stored"].items():
            if any(stored):
                marker, line = STYLES.get(design, ("o", "-"))
                files.plot(users, [b / 1e6 for b in stored], marker=marker, linestyle=line, label=design)
        files.set_xlabel("users logged in")
        files.set_ylabel("shared SQLite files (MB)")
        files.set_title("The shared store and cart table")
        files.legend(fontsize=7)
    if len(axes) > 2:
        wire, cart = axes[2], ev.extra["cart"]
        for design, grown in cart.items():
            if design == "session + shared store":
                continue  # the same sid cookie as session + memory: one line for both
            marker, line = STYLES.get(design, ("o", "-"))
            name = "sid cookie (both session designs)" if design == "session + memory" else design
            wire.plot(grown["lines"], grown["credential"], linestyle=line, label=name)
        wire.axhline(4096, color="grey", linestyle="--", label="browser limit (4096 bytes)")
        too_big = ev.measurements["cart lines when the token outgrows a cookie"]
        if too_big is not None:
            wire.axvline(too_big, color="grey", linestyle=":", label=f"too big from {too_big} lines")
        wire.set_xlabel("cart lines")
        wire.set_ylabel("cookie bytes (name + value)")
        wire.set_title("What the browser must carry")
        wire.set_ylim(0, max(4096, *cart["token + cart in token"]["credential"]) * 1.5)  # room for the legend
        wire.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
