"""Evaluation: one runner (:mod:`artifacts.eval.runner`), one adapter per task, robustness
sweeps (:mod:`artifacts.eval.robustness`); metrics live in :mod:`artifacts.metrics`."""
from artifacts.eval.runner import evaluate, get_adapter

__all__ = ["evaluate", "get_adapter"]
