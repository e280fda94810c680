"""Pixel-level scores of a predicted binary mask against a ground-truth mask."""
from __future__ import annotations

import numpy as np


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
    if tp + fp + fn == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0, "iou": 1.0}
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * tp / (2 * tp + fp + fn),
        "iou": tp / (tp + fp + fn),
    }
