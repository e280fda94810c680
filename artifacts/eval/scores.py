"""Image-level score metrics shared by the detection adapters (manipulation, synthetic, ...).

:func:`image_summary` takes binary truth and scores and returns ROC AUC and average precision
(threshold-free) and accuracy at the fixed threshold 0.5 and at the best single threshold (chosen
on the data it is reported on: an optimistic upper reference, labelled so), each with a 95 %
bootstrap interval over images (the best threshold is chosen again inside every resample).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from artifacts.metrics import THRESHOLDS, average_precision, bootstrap_ci, roc_auc

FIXED = 0.5
I_FIXED = int(np.flatnonzero(THRESHOLDS == FIXED)[0])


def metric(value, interval) -> dict[str, Any]:
    """``{"value", "ci"}``: the form every figure of an eval.json takes."""
    return {"value": float(value), "ci": None if interval is None else [float(interval[0]), float(interval[1])]}


def fmt(m) -> str:
    from artifacts.eval.runner import fmt_metric

    return fmt_metric(m)


def image_summary(y: np.ndarray, s: np.ndarray, *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any] | None:
    """Metrics of scores ``s`` against truth ``y`` (bool); None unless both classes are present."""
    y, s = np.asarray(y, bool), np.asarray(s, float)
    if not y.size or y.all() or not y.any():
        return None

    def ci(fn):
        return bootstrap_ci(len(s), fn, n_boot=n_boot, seed=seed) if n_boot else None

    acc = (s[:, None] >= THRESHOLDS[None, :]) == y[:, None]  # (n, thresholds)
    t_acc = int(np.argmax(acc.mean(0)))
    return {
        "n_positive": int(y.sum()), "n_negative": int((~y).sum()),
        "auc": metric(roc_auc(s, y), ci(lambda i: roc_auc(s[i], y[i]))),
        "ap": metric(average_precision(s, y), ci(lambda i: average_precision(s[i], y[i]))),
        "accuracy_fixed": metric(acc[:, I_FIXED].mean(), ci(lambda i: acc[i, I_FIXED].mean())),
        "accuracy_best": metric(acc[:, t_acc].mean(), ci(lambda i: acc[i, int(np.argmax(acc[i].mean(0)))].mean())),
        "best_threshold": float(THRESHOLDS[t_acc]),
    }


def image_lines(i: dict[str, Any], prefix: str = "", width: int = 16) -> list[str]:
    """The printed rows of an :func:`image_summary`: accuracy at 0.5 and best, AUC, AP."""
    return [f"{prefix + 'accuracy':<{width}}{fmt(i['accuracy_fixed']):<26}{fmt(i['accuracy_best'])}  "
            f"t={i['best_threshold']:.2f}",
            f"{prefix + 'AUC':<{width}}{fmt(i['auc'])}   (threshold-free)",
            f"{prefix + 'AP':<{width}}{fmt(i['ap'])}   (threshold-free)"]
