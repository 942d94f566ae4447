"""Notebook 14: what one write costs, and what a failover or a restart keeps, side by side.

Left: the median time of one write for each way of making it safer (log scale: ``WAIT`` is two
orders of magnitude above the rest). Right: the share of acknowledged writes still there after a
failover, and of sessions after a crash and restart. Every bar has its value written on it, so
nothing is told by colour alone.
"""

from __future__ import annotations

from typing import Any


def plot(failovers: dict[bool, Any], restarts: dict[str, Any], fig: Any = None) -> Any:
    """Two panels: write cost (ms, log scale) and what was kept (%), one labelled bar per setting.

    The first two bars are the failover's writes (one ``RPUSH``, then ``WAIT``), the others the persistence
    runs' cart updates (a ``WATCH``/``MULTI``/``EXEC`` transaction: two round trips), so compare within each group."""
    import matplotlib.pyplot as plt

    if fig is None:
        fig = plt.figure(figsize=(9, 3.4))
    cost, kept = fig.subplots(1, 2)
    plain, waited = failovers[False], failovers[True]
    names = ["cart line, no WAIT", "cart line + WAIT 1", *(f"cart update, {s}" for s in restarts)]
    ms = [plain.write_ms, waited.write_ms, *(r.write_us / 1000 for r in restarts.values())]
    bars = cost.barh(names, ms, color="tab:blue", edgecolor="black", linewidth=0.5)
    cost.set_xscale("log")
    cost.bar_label(bars, labels=[f"{v:.2f} ms" for v in ms], fontsize=8, padding=2)
    cost.set_xlim(min(ms) / 2, max(ms) * 20)
    cost.invert_yaxis()
    cost.set_xlabel("one write, median (ms, log scale)")
    cost.set_title("What a write costs")

    labels = ["failover, no WAIT", "failover, WAIT 1", *(f"restart, {s}" for s in restarts)]
    shares = [100 * (1 - f.lost / max(f.acknowledged, 1)) for f in (plain, waited)]
    shares += [100 * r.sessions_kept / max(r.sessions, 1) for r in restarts.values()]
    bars = kept.barh(labels, shares, color="tab:green", edgecolor="black", linewidth=0.5, hatch="//")
    kept.bar_label(bars, labels=[f"{v:.1f}%" for v in shares], fontsize=8, padding=2)
    kept.set_xlim(0, 125)
    kept.invert_yaxis()
    kept.set_xlabel("acknowledged writes or sessions kept (%)")
    kept.set_title("What survives")
    fig.tight_layout()
    return fig
