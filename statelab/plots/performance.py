"""Row 05, performance: where the per-request time goes, and what a whole round trip costs."""

from __future__ import annotations

from typing import Any

from ..shop.tokens import ALGORITHMS
from . import show_alt_text


def plot(ev: Any, ax: Any = None) -> Any:
    """Two panels from :func:`statelab.experiments.performance.run`'s evidence.

    Left: in-process µs per piece of state work (log scale): a session lookup or write, per
    algorithm a token check or signature split into the cryptography (hatched) and PyJWT's own
    parsing or encoding (plain), and for the cart-in-db design an identity-only token check (whole,
    plain) and a cart table read or write. Right: p50 round trips of ``GET /cart`` and ``POST /cart`` per design.
    ``ax`` may be a pair of axes.
    """
    import matplotlib.pyplot as plt
    show_alt_text()  # a chart of ours in a notebook is described to a screen reader

    m = ev.measurements
    if ax is None:
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 5))
    else:
        left, right = ax if isinstance(ax, (list, tuple)) else (ax, None)
        fig = left.figure

    rows: list[tuple[str, float, float]] = []  # label, cryptography (or the whole lookup), the rest
    for design, us in m["session lookup µs"].items():
        rows.append((f"{design}: lookup", us, 0.0))
    for design, us in m["session write µs"].items():
        rows.append((f"{design}: write", us, 0.0))
    for a in ALGORITHMS:
        rows.append((f"{a} token: check", m["token verify: cryptography µs"][a], m["token verify: parsing µs"][a]))
        rows.append((f"{a} token: sign", m["token sign: cryptography µs"][a], m["token sign: encoding µs"][a]))
    rows.append(("identity-only HS256 token: whole check", 0.0, m["token + cart in db: identity-only token check µs"]))
    for kind, us in m["token + cart in db: cart table µs"].items():
        rows.append((f"cart table: {kind}", us, 0.0))
    y = list(range(len(rows)))
    sessions = [i for i, r in enumerate(rows) if r[0].startswith(("session", "cart table"))]
    tokens = [i for i in y if i not in sessions]
    left.barh([y[i] for i in sessions], [rows[i][1] for i in sessions], color="tab:blue",
              label="session store or cart table")
    left.barh([y[i] for i in tokens], [rows[i][1] for i in tokens], color="tab:orange", hatch="///",
              edgecolor="black", label="cryptography alone")
    left.barh([y[i] for i in tokens], [rows[i][2] for i in tokens], left=[rows[i][1] for i in tokens],
              color="moccasin", edgecolor="black", label="PyJWT parsing / encoding")
    for i, (_, a, b) in enumerate(rows):
        left.text((a + b) * 1.15, i, f"{a + b:.0f} µs" if a + b >= 10 else f"{a + b:.1f} µs", va="center",
                  fontsize=7)
    left.set_xscale("log")
    left.set_xlim(0.3, max(a + b for _, a, b in rows) * 8)
    left.set_yticks(y, [r[0] for r in rows], fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("microseconds per call, in-process (log scale)")
    left.set_title("State work per request")
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)

    if right is not None:
        designs = ev.extra["designs"]
        yy = list(range(len(designs)))
        get = [m["GET p50 ms"][d] for d in designs]
        post = [m["POST p50 ms"][d] for d in designs]
        right.barh([i - 0.2 for i in yy], get, height=0.4, color="lightgrey", edgecolor="black", label="GET /cart")
        right.barh([i + 0.2 for i in yy], post, height=0.4, color="dimgrey", edgecolor="black", hatch="..",
                   label="POST /cart (a cart write)")
        for i, (g, p) in enumerate(zip(get, post, strict=True)):
            right.text(g + 0.02, i - 0.2, f"{g:.2f}", va="center", fontsize=7)
            right.text(p + 0.02, i + 0.2, f"{p:.2f}", va="center", fontsize=7)
        right.set_xlim(0, max(get + post) * 1.35)
        right.set_yticks(yy, designs, fontsize=8)
        right.invert_yaxis()
        right.set_xlabel("round trip, ms (p50)")
        right.set_title("Whole round trip")
        right.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, frameon=False)
    fig.tight_layout()
    return fig
