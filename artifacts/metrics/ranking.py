"""Threshold-free ranking metrics of scores against binary labels."""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _check(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).ravel().astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.size} vs {y.size}")
    if y.all() or not y.any():
        raise ValueError("ranking metrics need both classes")
    return s, y


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve (Mann-Whitney U with midranks for ties); equals
    ``sklearn.metrics.roc_auc_score``. Raises ValueError when only one class is present."""
    s, y = _check(scores, labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(scores, labels) -> float:
    """Average precision (area under the precision-recall curve as a step sum over distinct
    score thresholds); equals ``sklearn.metrics.average_precision_score``."""
    s, y = _check(scores, labels)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each distinct score
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall_gain = np.diff(np.r_[0, tp]) / y.sum()
    return float((precision * recall_gain).sum())


def spearman(x, y) -> float:
    """Spearman rank correlation (Pearson correlation of midranks); equals
    ``scipy.stats.spearmanr(x, y).statistic``. Raises ValueError when either side is constant."""
    a = rankdata(np.asarray(x, dtype=np.float64).ravel())
    b = rankdata(np.asarray(y, dtype=np.float64).ravel())
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"spearman needs two equal-length samples of size >= 2, got {a.size} and {b.size}")
    a, b = a - a.mean(), b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    if denom == 0:
        raise ValueError("spearman is undefined for a constant sample")
    return float((a * b).sum() / denom)
