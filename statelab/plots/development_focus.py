"""Row 11, development focus: how long a stolen credential keeps working, by what revoked it."""

from __future__ import annotations

from typing import Any

from . import show_alt_text


def bars(ev: Any) -> list[tuple[str, int, int]]:
    """(label, requests accepted, requests tried) for each way of ending a stolen credential."""
    m = ev.measurements
    n = m["replays"]
    users = m["rotation_users"]
    return [
        ("session deleted at logout,\nasked directly", m["stateful_replays_accepted_after_logout"], n),
        ("session deleted at logout,\nthrough a cache keeping\nper-user answers",
         m["cache_replays_served_after_logout"], n),
        ("token, after logout\n(until exp)", m["stateless_replays_accepted_after_logout"], n),
        ("1-second token,\nafter exp", 0 if m["short_token_refused_after_exp"] else 1, 1),
        ("tokens, after their\nsigning key was retired", m["rotation_accepted_after_retire"], users),
    ]


def plot(ev: Any, ax: Any = None) -> Any:
    """Bars: share of a thief's requests still accepted, with the count written on each bar."""
    import matplotlib.pyplot as plt
    show_alt_text()  # a chart of ours in a notebook is described to a screen reader

    rows = bars(ev)
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.2, 3.4))
    else:
        fig = ax.figure
    shares = [accepted / tried for _, accepted, tried in rows]
    drawn = ax.barh([label for label, _, _ in rows], shares, color=["tab:red" if s else "tab:green" for s in shares],
                    edgecolor="black")
    for bar, share in zip(drawn, shares, strict=True):
        bar.set_hatch("//" if share else "")   # "still accepted" is hatched as well as red and written out
    for y, (share, (_, accepted, tried)) in enumerate(zip(shares, rows, strict=True)):
        words = "still accepted" if accepted else "all refused"
        ax.text(min(share, 0.7) + 0.02, y, f"{accepted}/{tried} {words}", va="center", fontsize=8)
    ax.set_xlim(0, 1.05)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("share of a thief's requests accepted")
    ax.set_title("When does a stolen credential stop working?")
    fig.tight_layout()
    return fig
