"""Metrics: one implementation of each, tested against a reference library (scikit-learn)."""
from artifacts.metrics.ranking import roc_auc
from artifacts.metrics.segmentation import pixel_scores

__all__ = ["pixel_scores", "roc_auc"]
