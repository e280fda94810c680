"""Pixel-level scores of predicted masks / heatmaps against ground-truth masks."""
from __future__ import annotations

import numpy as np

#: thresholds at which :func:`threshold_counts` tallies a heatmap (0.00, 0.01, ..., 1.00)
THRESHOLDS = np.round(np.linspace(0.0, 1.0, 101), 2)


def pixel_scores(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1 and IoU of the positive (manipulated) class.

    A score whose denominator is zero is 0, except that an empty prediction of an empty ground
    truth scores 1 everywhere (scikit-learn's ``zero_division=1``).
    """
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: prediction {pred.shape} vs ground truth {gt.shape}")
    tp = float(np.count_nonzero(pred & gt))
    fp = float(np.count_nonzero(pred & ~gt))
    fn = float(np.count_nonzero(~pred & gt))
    return scores_from_counts(tp, fp, fn)


def scores_from_counts(tp, fp, fn) -> dict[str, float]:
    """:func:`pixel_scores` from counts (scalars or arrays, e.g. one per threshold)."""
    tp, fp, fn = (np.asarray(v, dtype=np.float64) for v in (tp, fp, fn))
    with np.errstate(divide="ignore", invalid="ignore"):
        empty = (tp + fp + fn) == 0
        out = {
            "precision": np.where(empty, 1.0, np.where(tp + fp > 0, tp / (tp + fp), 0.0)),
            "recall": np.where(empty, 1.0, np.where(tp + fn > 0, tp / (tp + fn), 0.0)),
            "f1": np.where(empty, 1.0, 2 * tp / (2 * tp + fp + fn)),
            "iou": np.where(empty, 1.0, tp / (tp + fp + fn)),
        }
    return {k: (float(v) if v.ndim == 0 else v) for k, v in out.items()}


def threshold_counts(heatmap: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TP, FP, FN of ``heatmap >= t`` for every ``t`` in :data:`THRESHOLDS`, in one pass.

    Values are binned to hundredths (floor), so a count at ``t`` matches ``heatmap >= t`` except
    for values within float rounding of a bin edge."""
    heatmap, gt = np.asarray(heatmap), np.asarray(gt, bool)
    if heatmap.shape != gt.shape:
        raise ValueError(f"heatmap {heatmap.shape} and ground truth {gt.shape} differ in size")
    bins = np.clip(np.floor(heatmap * 100.0 + 1e-6), 0, 100).astype(np.int64)
    pos = np.bincount(bins[gt], minlength=101)
    neg = np.bincount(bins[~gt], minlength=101)
    tp = pos[::-1].cumsum()[::-1]  # pixels with bin >= k
    fp = neg[::-1].cumsum()[::-1]
    return tp, fp, pos.sum() - tp
