"""Data sources for the toolkit: bundled real photos and synthetic tampering.

* :mod:`artifacts.datasets.photos` -- real photos that ship inside installed
  packages (scikit-image, optionally scikit-learn and matplotlib), loadable
  offline, plus loading of a user's folder of photos.
* :mod:`artifacts.datasets.manipulation` -- a seeded generator of realistic
  tampered images (splice, blended splice, copy-move, removal) with exact
  ground-truth masks, and a writer for a CASIA-like folder layout; its
  building blocks live in ``regions``, ``edits`` and ``processing``.

Names below are re-exported lazily, so importing this package stays cheap
(no OpenCV, scikit-image or torch until something is actually used).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "photo_names": "photos",
    "load_photo": "photos",
    "load_folder": "photos",
    "as_photos": "photos",
    "Photo": "photos",
    "KINDS": "manipulation",
    "POST_OPS": "manipulation",
    "GeneratorConfig": "manipulation",
    "Sample": "manipulation",
    "generate": "manipulation",
    "authentic": "manipulation",
    "write_dataset": "manipulation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
