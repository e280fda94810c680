"""Artifacts: find artifacts in images, dMRI volumes and 3D reconstructions, and repair them.

The public API is small and lazy: ``import artifacts`` imports neither torch nor any optional
part; each name below is imported on first use.

>>> import artifacts
>>> artifacts.list_models(task="manipulation")           # doctest: +SKIP
>>> det = artifacts.detect("photo.jpg", task="manipulation")  # doctest: +SKIP
>>> det.score, det.mask.shape                             # doctest: +SKIP
>>> up = artifacts.restore("photo.jpg", task="sr")           # doctest: +SKIP
>>> up.image.shape                                          # doctest: +SKIP
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from artifacts._version import __version__

# public name -> module that defines it
_LAZY = {
    "Detection": "artifacts.types",
    "Restoration": "artifacts.types",
    "Status": "artifacts.types",
    "create": "artifacts.registry",
    "list_models": "artifacts.registry",
    "model_info": "artifacts.registry",
    "register_model": "artifacts.registry",
    "WeightSpec": "artifacts.weights",
    "load_checkpoint": "artifacts.weights",
    "load_image": "artifacts.io",
    "ImageData": "artifacts.io",
    "ImageReadError": "artifacts.io",
    "detect": "artifacts.api",
    "restore": "artifacts.api",
    "run_batch": "artifacts.engine",
    "open_store": "artifacts.engine",
    "evaluate": "artifacts.eval",
    "write_report": "artifacts.report",
}

__all__ = sorted(_LAZY) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from artifacts.api import detect, restore
    from artifacts.engine import open_store, run_batch
    from artifacts.eval import evaluate
    from artifacts.report import write_report
    from artifacts.io import ImageData, ImageReadError, load_image
    from artifacts.registry import create, list_models, model_info, register_model
    from artifacts.types import Detection, Restoration, Status
    from artifacts.weights import WeightSpec, load_checkpoint


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'artifacts' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
