"""Bootstrap confidence intervals over items (the dev sets are small: report the spread)."""
from __future__ import annotations

from typing import Callable

import numpy as np


def bootstrap_ci(n: int, statistic: Callable[[np.ndarray], float], *, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``statistic(indices)`` over ``n_boot`` resamples of ``range(n)``
    with replacement. Resamples where the statistic is undefined (ValueError, e.g. an AUC
    without both classes) are skipped; (nan, nan) if fewer than half are defined."""
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        try:
            values.append(float(statistic(rng.integers(0, n, n))))
        except ValueError:
            continue
    if len(values) < n_boot / 2:
        return float("nan"), float("nan")
    lo, hi = np.quantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)
