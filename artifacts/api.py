"""Python API convenience: ``artifacts.detect(x, task=...)`` and ``artifacts.restore(x, task=...)``
with a cached model.

``x`` may be a path, a numpy array, a PIL image or a tensor, single or batched (see
:func:`artifacts.io.as_images`); the result is a :class:`~artifacts.types.Detection` or a list of
them, the same objects the CLI stores. For folders and resumable batches use
:func:`artifacts.run_batch`.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from artifacts.registry import create, default_model, model_info


@lru_cache(maxsize=4)
def _cached(name: str, weights: str | None, device: str | None, overrides: tuple) -> Any:
    return create(name, weights=weights, device=device, **dict(overrides))


def detect(x, *, task: str | None = None, model: str | None = None, weights: str | None = None,
           device: str | None = None, **overrides: Any):
    """Detect artifacts in ``x`` with ``model`` (default: the default model of ``task``, which
    defaults to ``manipulation``)."""
    task_ = task or "manipulation"
    name = model_info(model, task=task_).full_name if model else default_model(task_)
    detector = _cached(name, weights, device, tuple(sorted(overrides.items())))
    if task is not None and detector.task != task:
        raise ValueError(f"model {detector.model_id} belongs to task {detector.task!r}, not {task!r}")
    return detector.detect(x)


def restore(x, *, task: str = "sr", model: str | None = None, mask=None, heatmap=None, threshold: float | None = None,
            refs=None, weights: str | None = None, device: str | None = None, **overrides: Any):
    """Restore ``x`` with ``model`` (default: the default model of ``task``: ``sr`` upscales,
    ``inpaint`` fills ``mask`` (or ``heatmap`` >= ``threshold``), ``refrepair`` repairs a novel
    view from ``refs``); returns a :class:`~artifacts.types.Restoration`."""
    name = model_info(model, task=task).full_name if model else default_model(task)
    restorer = _cached(name, weights, device, tuple(sorted(overrides.items())))
    if restorer.task != task and model is None:
        raise ValueError(f"model {restorer.model_id} belongs to task {restorer.task!r}, not {task!r}")
    if not hasattr(restorer, "restore"):
        raise ValueError(f"{restorer.model_id} is a detector; use artifacts.detect")
    return restorer.restore(x, mask=mask, heatmap=heatmap, threshold=threshold, refs=refs)
