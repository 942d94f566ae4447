"""Gunther's Universal Scalability Law, fitted with a small least squares (numpy only).

    X(N) = lam * N / (1 + sigma * (N - 1) + kappa * N * (N - 1))

``lam`` is the throughput of one worker, ``sigma`` contention (the share of work that queues for
one shared thing: a lock, a store, a core), ``kappa`` a cost that grows with every *pair* of workers.
Gunther calls it coherency: workers keeping each other's copies up to date (cache lines, replicas,
locks passed around). Gunicorn workers do not coordinate at all, so a ``kappa`` fitted to them names
no coherency: it soaks up whatever makes throughput fall past the peak (more processes than cores,
context switches, a load generator on the same cores). With ``kappa > 0`` throughput peaks at
``N* = sqrt((1 - sigma) / kappa)`` and then falls; with ``kappa = 0`` it levels off at ``lam / sigma``
(Amdahl's law).

Three parameters need many more points than three, and a peak that the cores do not set: on a machine
whose few cores the workers share with the load generator and the store, throughput peaks at the core
count whatever the software does, and a fit would only redraw that. :func:`why_not_fit` says when a fit
says nothing (fewer than :data:`MIN_POINTS` points, or no more cores than the measured peak).

For fixed ``sigma`` and ``kappa`` the model is linear in ``lam``, so the fit searches a grid of
(sigma, kappa), solves ``lam`` exactly for each, and keeps the pair with the smallest squared error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fit:
    lam: float
    sigma: float
    kappa: float
    rmse: float
    points: int

    def __call__(self, n: float | np.ndarray) -> float | np.ndarray:
        return model(n, self.lam, self.sigma, self.kappa)

    def __repr__(self) -> str:  # rounded, and named in words (issue 20)
        return (f"<USL fit over {self.points} points: {self.lam:.0f} req/s for one worker, contention sigma "
                f"{self.sigma:.3f}, coherency kappa {self.kappa:.4f}, error {self.rmse:.0f} req/s>")

    @property
    def peak(self) -> float:
        """Worker count where throughput peaks (``inf`` when ``kappa`` is 0)."""
        return math.inf if self.kappa <= 0 else math.sqrt(max(0.0, 1 - self.sigma) / self.kappa)

    @property
    def ceiling(self) -> float:
        """The most throughput the model allows: at the peak, or ``lam / sigma`` without coherency cost."""
        if self.kappa <= 0:
            return math.inf if self.sigma <= 0 else self.lam / self.sigma
        return float(self(self.peak))


#: The fewest (workers, throughput) points a three-parameter fit is shown for.
MIN_POINTS = 6


def why_not_fit(workers: list[int], throughput: list[float], cores: int) -> str:
    """Why a fit to these points would say nothing, in one sentence; empty when it may be fitted.

    A fit needs at least :data:`MIN_POINTS` points, and more cores than the worker count where throughput
    peaked: when the peak sits at (or past) the cores, the cores set it, not the software.
    """
    if len(workers) < MIN_POINTS:
        return (f"{len(workers)} points, and a fit of three parameters needs at least {MIN_POINTS}")
    peak = peak_workers(workers, throughput)
    if cores <= peak:
        return (f"throughput peaked at {peak} worker{'s' if peak != 1 else ''} with {cores} "
                f"core{'s' if cores != 1 else ''}: the cores set that peak, so a fit needs more cores than the peak")
    return ""


def peak_workers(workers: list[int], throughput: list[float]) -> int:
    """The measured worker count with the most throughput."""
    return max(zip(throughput, workers, strict=True))[1]


def model(n, lam: float, sigma: float, kappa: float):
    n = np.asarray(n, dtype=float)
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


def fit(workers: list[int], throughput: list[float]) -> Fit:
    """Least-squares fit of the USL to measured (workers, throughput) points (at least two)."""
    n = np.asarray(workers, dtype=float)
    x = np.asarray(throughput, dtype=float)
    if n.size < 2 or n.size != x.size or np.any(n < 1) or np.any(x <= 0):
        raise ValueError("need two or more points, workers >= 1 and throughput > 0")
    sigmas = np.linspace(0, 1, 201)[:, None, None]
    kappas = np.concatenate([[0.0], np.geomspace(1e-4, 1, 200)])[None, :, None]
    shape = n / (1 + sigmas * (n - 1) + kappas * n * (n - 1))  # (sigma, kappa, point)
    lam = (shape * x).sum(-1) / (shape * shape).sum(-1)
    err = ((lam[..., None] * shape - x) ** 2).mean(-1)
    i, j = np.unravel_index(np.argmin(err), err.shape)
    return Fit(float(lam[i, j]), float(sigmas[i, 0, 0]), float(kappas[0, j, 0]), float(math.sqrt(err[i, j])),
               int(n.size))
