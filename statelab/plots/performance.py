"""Row 05, performance: where the per-request time goes, and what a whole round trip costs."""

from __future__ import annotations

from typing import Any

from ..shop.tokens import ALGORITHMS

#: Per design: marker and line style, so no line is told apart by colour alone.
_STYLES = ("o-", "s--", "^-.", "v:", "D-")


def plot(ev: Any, ax: Any = None) -> Any:
    """Three panels from :func:`statelab.experiments.performance.run`'s evidence.

    Left: in-process µs per piece of state work (log scale): a session lookup or write (memory, the lower
    bound; the shared store with no distance), per algorithm a token check or signature split into the
    cryptography (hatched) and PyJWT's own parsing or encoding (plain), and for the cart-in-db design an
    identity-only token check (whole, plain) and a cart read or write. Middle and right: median
    ``GET /cart`` and ``POST /cart`` round trips against the one-way distance to the shared store, one line
    per design (each its own marker and dash), the crossover marked. ``ax`` may be a list of up to three axes.
    """
    import matplotlib.pyplot as plt

    m = ev.measurements
    if ax is None:
        fig, axes = plt.subplots(1, 3, figsize=(16, 5), gridspec_kw={"width_ratios": [1.2, 1, 1]})
    else:
        axes = list(ax) if isinstance(ax, (list, tuple)) else [ax]
        fig = axes[0].figure
    left = axes[0]

    rows: list[tuple[str, float, float]] = []  # label, cryptography (or the whole lookup), the rest
    for design, us in m["session lookup µs"].items():
        rows.append((f"{design}: lookup", us, 0.0))
    for design, us in m.get("session write µs", {}).items():
        rows.append((f"{design}: write", us, 0.0))
    for a in ALGORITHMS:
        if "token verify: cryptography µs" in m:
            rows.append((f"{a} token: check", m["token verify: cryptography µs"][a], m["token verify: parsing µs"][a]))
            rows.append((f"{a} token: sign", m["token sign: cryptography µs"][a], m["token sign: encoding µs"][a]))
        else:
            rows.append((f"{a} token: check", 0.0, m["token verify µs"][a]))
    slim = m.get("token + cart in db: identity-only token check µs")
    if slim is not None:
        rows.append(("identity-only HS256 token: whole check", 0.0, slim))
        for kind, us in m["token + cart in db: cart table µs"].items():
            rows.append((f"cart in the shared store: {kind}", us, 0.0))
    y = list(range(len(rows)))
    sessions = [i for i, r in enumerate(rows) if r[0].startswith(("session", "cart in"))]
    tokens = [i for i in y if i not in sessions]
    left.barh([y[i] for i in sessions], [rows[i][1] for i in sessions], color="tab:blue",
              label="session store or cart store")
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
    left.set_xlabel("microseconds per call, in-process, no distance (log scale)")
    left.set_title("State work per request")
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)

    found = ev.extra.get("crossover", (float("inf"), None, 0.0))[0]
    for panel, method in zip(axes[1:], ("GET", "POST"), strict=False):
        by = m.get(f"{method} p50 ms by distance")
        if not by:
            panel.text(0.5, 0.5, "not measured: no Valkey here", ha="center", transform=panel.transAxes)
            continue
        xs = [float(d) for d in by]
        for style, design in zip(_STYLES, ev.extra["designs"], strict=False):
            panel.plot(xs, [by[d][design] for d in by], style, markersize=5, linewidth=1.2, label=design)
        if method == "GET" and found != float("inf"):
            panel.axvline(found, color="black", linewidth=0.8, linestyle=(0, (1, 3)))
            panel.annotate(f"crossover: token faster from {found:g} ms", (found, 0), xytext=(4, 6),
                           textcoords="offset points", fontsize=7)
        panel.set_ylim(0, max(v for row in by.values() for v in row.values()) * 1.15)
        panel.set_xlabel("distance to the shared store, ms one way (a round trip is twice)")
        panel.set_ylabel(f"{method} /cart, ms (median)")
        panel.set_title(f"{method} /cart against the store's distance")
        panel.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig
