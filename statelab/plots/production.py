"""Notebook 13: throughput against gunicorn worker processes, next to the core count (and a USL fit only
when the points can carry one: see :func:`statelab.production.usl.why_not_fit`)."""

from __future__ import annotations

from typing import Any


def plot(scaling: Any, ax: Any = None) -> Any:
    """Measured requests per second per worker count (markers), linear scaling from one worker (dashed),
    the core count (dotted line), and the USL fit (solid line) when ``scaling.fit`` is not None."""
    import matplotlib.pyplot as plt
    import numpy as np

    from ..production.usl import MIN_POINTS

    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.6))
    fit, top = scaling.fit, max(scaling.workers)
    n = np.linspace(1, top, 100)
    ax.plot(scaling.workers, scaling.rps, "o", markersize=8, label="measured (best run per worker count)")
    for w, r in zip(scaling.workers, scaling.rps, strict=True):
        ax.annotate(f"{r:.0f}", (w, r), xytext=(0, 7), textcoords="offset points", ha="center", fontsize=7)
    one = scaling.rps[scaling.workers.index(1)] if 1 in scaling.workers else scaling.rps[0] / scaling.workers[0]
    ax.plot(n, one * n, "--", color="grey", linewidth=1, label="linear from one worker")
    if fit is not None:
        ax.plot(n, fit(n), "-", label=f"USL fit: σ={fit.sigma:.2f}, κ={fit.kappa:.3f}")
    ax.axvline(scaling.cores, linestyle=":", color="black", linewidth=1)
    ax.annotate(f"{scaling.cores} core{'s' if scaling.cores != 1 else ''}", (scaling.cores, 0),
                xytext=(4, 4), textcoords="offset points", fontsize=8)
    ax.set_xlabel("gunicorn worker processes (N)")
    ax.set_ylabel("requests per second")
    ax.set_xticks(scaling.workers)
    ax.set_ylim(0, max(scaling.rps) * 1.4)
    title = "Throughput against worker processes, sessions in Redis"
    ax.set_title(title if fit is not None else title + "\n(no scaling law fitted: " + ("too few points"
                 if len(scaling.workers) < MIN_POINTS else "the peak is the core count") + ")", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    return ax
