"""Metrics: one implementation of each, tested against a reference library (scikit-learn)."""
from artifacts.metrics.bootstrap import bootstrap_ci
from artifacts.metrics.ranking import average_precision, roc_auc
from artifacts.metrics.segmentation import THRESHOLDS, pixel_scores, scores_from_counts, threshold_counts

__all__ = ["THRESHOLDS", "average_precision", "bootstrap_ci", "pixel_scores", "roc_auc", "scores_from_counts",
           "threshold_counts"]
