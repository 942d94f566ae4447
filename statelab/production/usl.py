"""Gunther's Universal Scalability Law, fitted with a small least squares (numpy only).

    X(N) = lam * N / (1 + sigma * (N - 1) + kappa * N * (N - 1))

``lam`` is the throughput of one worker, ``sigma`` contention (the share of work that queues for
one shared thing: a lock, a store, a core), ``kappa`` coherency (the cost of workers keeping each
other up to date, growing with every pair). With ``kappa > 0`` throughput peaks at
``N* = sqrt((1 - sigma) / kappa)`` and then falls; with ``kappa = 0`` it levels off at ``lam / sigma``
(Amdahl's law).

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
