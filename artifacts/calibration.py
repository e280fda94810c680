"""Mapping raw outputs of training-free methods to ``[0, 1]``.

One mapping, a logistic model ``1 / (1 + exp(-(w . x + b)))`` fitted by Newton-Raphson with
class-balanced weights, so that 0.5 is the point where a positive and a negative are equally
likely *at equal priors* (the operating threshold does not move with the share of manipulated
pixels in the fitting data). With one raw feature it is Platt scaling (``a x + b``); with
several (a fusion's component log-odds, stacked on the first axis) it is a stacked combiner.
Fits use seeded synthetic data from ``artifacts.datasets``, never files that are reported on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Logistic:
    w: tuple[float, ...] = (1.0,)
    b: float = 0.0

    @property
    def a(self) -> float:
        return self.w[0]

    def linear(self, x):
        """``w . x + b``: x is a raw value/map (one feature) or features stacked on axis 0."""
        if len(self.w) == 1:
            return self.w[0] * x + self.b
        return sum(wk * x[k] for k, wk in enumerate(self.w)) + self.b

    def __call__(self, x):
        """Apply to a numpy array, a float or a torch tensor (same type back)."""
        z = self.linear(x)
        if hasattr(z, "sigmoid"):
            return z.sigmoid()
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))

    def inverse(self, p: float) -> float:
        """Raw value at which the calibrated output equals ``p`` (one feature only)."""
        return (np.log(p / (1.0 - p)) - self.b) / self.a

    def to_dict(self) -> dict:
        if len(self.w) == 1:
            return {"a": float(self.w[0]), "b": float(self.b)}
        return {"w": [float(v) for v in self.w], "b": float(self.b)}

    @classmethod
    def from_dict(cls, d: dict) -> "Logistic":
        return cls(w=tuple(d["w"]) if "w" in d else (d["a"],), b=d["b"])


def Platt(a: float = 1.0, b: float = 0.0) -> Logistic:
    """The one-feature logistic curve ``1 / (1 + exp(-(a x + b)))``."""
    return Logistic((a,), b)


def fit_logistic(x: np.ndarray, y: np.ndarray, *, balanced: bool = True, l2: float = 1e-6,
                 iters: int = 50) -> Logistic:
    """Fit ``P(y=1 | x)``; ``x`` is (n,) or (n, k) raw features, ``y`` 0/1 with both classes."""
    x = np.asarray(x, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape[0] != y.size or y.size == 0:
        raise ValueError("x and y must be non-empty and the same length")
    n_pos, n_neg = y.sum(), (1 - y).sum()
    if n_pos == 0 or n_neg == 0:
        raise ValueError("calibration needs both positive and negative examples")
    w = np.where(y > 0, 0.5 / n_pos, 0.5 / n_neg) if balanced else np.full(y.size, 1.0 / y.size)
    # standardise for a well-conditioned Newton step, then map the parameters back
    mu, sd = x.mean(0), x.std(0)
    sd[sd == 0] = 1.0
    X = np.hstack([(x - mu) / sd, np.ones((y.size, 1))])
    theta = np.zeros(X.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(X @ theta, -60, 60)))
        grad = X.T @ (w * (p - y)) + l2 * theta
        hess = (X * (w * p * (1 - p))[:, None]).T @ X + l2 * np.eye(X.shape[1])
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    coef = theta[:-1] / sd
    return Logistic(w=tuple(float(c) for c in coef), b=float(theta[-1] - coef @ mu))


def fit_platt(x: np.ndarray, y: np.ndarray, **kwargs) -> Logistic:
    """:func:`fit_logistic` with one raw feature."""
    return fit_logistic(np.asarray(x, dtype=np.float64).ravel(), y, **kwargs)
