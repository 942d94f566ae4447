"""Notebook 13: throughput against gunicorn worker processes, with the fitted Universal Scalability Law."""

from __future__ import annotations

from typing import Any

from . import show_alt_text


def plot(scaling: Any, ax: Any = None) -> Any:
    """Measured requests per second per worker count (markers), the USL fit (line), linear scaling (dashed)."""
    import matplotlib.pyplot as plt
    show_alt_text()  # a chart of ours in a notebook is described to a screen reader
    import numpy as np

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.6))
    fit = scaling.fit
    n = np.linspace(1, max(scaling.workers), 100)
    ax.plot(scaling.workers, scaling.rps, "o", markersize=8, label="measured")
    ax.plot(n, fit(n), "-", label=f"USL fit: σ={fit.sigma:.2f}, κ={fit.kappa:.3f}")
    ax.plot(n, fit.lam * n, "--", color="grey", linewidth=1, label="linear (no contention)")
    ax.axvline(scaling.cores, linestyle=":", color="black", linewidth=1)
    ax.annotate(f"{scaling.cores} core{'s' if scaling.cores != 1 else ''}", (scaling.cores, 0),
                xytext=(4, 4), textcoords="offset points", fontsize=8)
    ax.set_xlabel("gunicorn worker processes (N)")
    ax.set_ylabel("requests per second")
    ax.set_xticks(scaling.workers)
    ax.set_ylim(0, max(max(scaling.rps), float(fit(max(scaling.workers)))) * 1.3)
    ax.set_title("Throughput against worker processes, sessions in Redis")
    ax.legend(fontsize=8, loc="upper left")
    return ax
