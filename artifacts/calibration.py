"""Mapping raw scores of training-free methods to ``[0, 1]``.

One mapping, Platt scaling (a logistic curve ``1 / (1 + exp(-(a x + b)))``), fitted by
Newton-Raphson with class-balanced weights, so that 0.5 is the point where a positive and a
negative are equally likely *at equal priors* (the operating threshold does not move with the
share of manipulated pixels in the fitting data). Fits use seeded synthetic data from
``artifacts.datasets``, never files that are reported on.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Platt:
    a: float = 1.0
    b: float = 0.0

    def __call__(self, x):
        """Apply to a numpy array, a float or a torch tensor (same type back)."""
        z = self.a * x + self.b
        if hasattr(z, "sigmoid"):
            return z.sigmoid()
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))

    def inverse(self, p: float) -> float:
        """Raw value at which the calibrated output equals ``p``."""
        return (np.log(p / (1.0 - p)) - self.b) / self.a

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def fit_platt(x: np.ndarray, y: np.ndarray, *, balanced: bool = True, l2: float = 1e-6, iters: int = 50) -> Platt:
    """Fit ``P(y=1 | x)`` with a logistic curve. ``y`` is 0/1; both classes must be present."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValueError("x and y must be non-empty and the same length")
    n_pos, n_neg = y.sum(), (1 - y).sum()
    if n_pos == 0 or n_neg == 0:
        raise ValueError("calibration needs both positive and negative examples")
    w = np.where(y > 0, 0.5 / n_pos, 0.5 / n_neg) if balanced else np.full_like(x, 1.0 / x.size)
    # standardise for a well-conditioned Newton step, then map the parameters back
    mu, sd = x.mean(), x.std() or 1.0
    xs = (x - mu) / sd
    X = np.stack([xs, np.ones_like(xs)], axis=1)
    theta = np.zeros(2)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(X @ theta, -60, 60)))
        grad = X.T @ (w * (p - y)) + l2 * theta
        hess = (X * (w * p * (1 - p))[:, None]).T @ X + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    a = theta[0] / sd
    return Platt(a=float(a), b=float(theta[1] - a * mu))
