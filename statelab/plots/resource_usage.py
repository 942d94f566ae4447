"""Row "Resource usage": where each design keeps the state (server memory, a shared store), what the client carries."""

from __future__ import annotations

from typing import Any

#: Marker and line style per design: never colour alone.
STYLES = {
    "session + memory": ("o", "-"),
    "session + shared store": ("^", "--"),
    "token + cart in token": ("d", ":"),
    "token + cart in db": ("x", "-."),
}


def _megabytes(ax: Any, users: list[int], by_design: dict[str, list[int]], ylabel: str, title: str) -> None:
    """One panel: bytes per design (shown in MB) against users logged in, a line style per design."""
    for design, values in by_design.items():
        marker, line = STYLES.get(design, ("o", "-"))
        ax.plot(users, [b / 1e6 for b in values], marker=marker, linestyle=line, label=design)
    ax.set_xlabel("users logged in")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)


def plot(ev: Any, ax: Any = None) -> Any:
    """Three panels: server memory against users, the shared store against users, cookie bytes against cart lines."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    else:
        axes = list(ax) if isinstance(ax, (list, tuple)) else [ax]
        fig = axes[0].figure
    users = ev.extra["users"]
    _megabytes(axes[0], users, ev.extra["held"], "server memory held (MB)", "The server's own memory")
    if len(axes) > 1:
        stored = {design: values for design, values in ev.extra["stored"].items() if any(values)}
        _megabytes(axes[1], users, stored, "shared store held (MB)", "The shared store and cart table")
    if len(axes) > 2:
        _wire(axes[2], ev)
    fig.tight_layout()
    return fig


#: Line styles of the limits drawn on the wire panel: told apart by style and by their labels, never colour alone.
LIMIT_STYLES = ("--", (0, (6, 2, 1, 2)), (0, (1, 1)), (0, (3, 3)))


def _wire(wire: Any, ev: Any) -> None:
    """Each credential against the limits of where it travels: a cookie's (browsers) and a header's (servers)."""
    cart = ev.extra["cart"]
    for design, grown in cart.items():
        if design == "session + shared store":
            continue  # the same sid cookie as session + memory: one line for both
        marker, line = STYLES.get(design, ("o", "-"))
        name = ("sid cookie (both session designs)" if design == "session + memory"
                else f"{design}: Authorization header")
        wire.plot(grown["lines"], grown["credential"], linestyle=line, label=name)
    cookie = ev.extra["cookie_limit"]
    limits = {"browser cookie limit (cookies only)": cookie,
              **{f"{name} (Authorization)": size for name, size in ev.extra["limits"].items()}}
    for style, (label, size) in zip(LIMIT_STYLES, limits.items(), strict=False):
        wire.axhline(size, color="grey", linestyle=style, label=f"{label}: {size:,} bytes")
    too_big = ev.measurements["cart lines when the token outgrows a cookie"]
    if too_big is not None:
        wire.axvline(too_big, color="grey", linestyle=":",
                     label=f"kept in a cookie, the token would pass {cookie:,} at {too_big} lines")
    wire.set_xlabel("cart lines")
    wire.set_ylabel("bytes, as its limit counts them (log)")
    wire.set_title("What each request must carry")
    wire.set_yscale("log")  # 55 bytes and 16 KB on one axis: the flat credentials stay visible
    wire.set_ylim(20, max(*limits.values(), *cart["token + cart in token"]["credential"]) * 30)  # room for the legend
    wire.legend(fontsize=6, loc="upper left")
