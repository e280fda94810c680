"""The detector interface shared by every task.

A detector is built by :func:`artifacts.create` from its config dataclass and (optional)
resolved weights. Subclasses implement :meth:`Detector.detect_one` (or override
:meth:`Detector.detect_batch` when true batching pays off); the engine, the API and the app
call only :meth:`detect_batch` / :meth:`detect`.
"""
from __future__ import annotations

import time
from typing import Any, ClassVar

from artifacts.model import Model, is_batched, pick_device  # noqa: F401  (pick_device: public here too)
from artifacts.types import Detection
from artifacts.weights import ResolvedWeights


class Detector(Model):
    """Base class: config + weights in, :class:`Detection` out."""

    #: training recipe used by `artifacts train` (see artifacts.train.RECIPES); None = not trainable
    recipe: ClassVar[str | None] = None

    def __init__(self, config: Any, weights: ResolvedWeights | None = None, device: str | None = None):
        super().__init__(config, weights, device)
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")

    @property
    def threshold(self) -> float:
        """Operating threshold: the config's ``threshold`` if set, else the weights' default."""
        override = getattr(self.config, "threshold", None)
        if override is not None:
            return float(override)
        return self.weights.threshold if self.weights else 0.5

    # -- inference ------------------------------------------------------------------------
    def detect_one(self, image) -> Detection:  # pragma: no cover - abstract
        raise NotImplementedError

    def detect_batch(self, images: list) -> list[Detection]:
        """Run on a list of :class:`~artifacts.io.ImageData`; adds timings to each result."""
        out = []
        for image in images:
            t0 = time.perf_counter()
            det = self.detect_one(image)
            det.meta = {**self.base_meta(), **det.meta}
            det.meta.setdefault("timings", {})["detect_s"] = round(time.perf_counter() - t0, 6)
            out.append(det)
        return out

    def process_batch(self, payloads: list) -> list[Detection]:
        return self.detect_batch(payloads)

    def detect(self, x) -> Detection | list[Detection]:
        """Python API: a path, array, PIL image or tensor (single or batched) -> Detection(s)."""
        from artifacts.io import as_images

        images = as_images(x)
        dets = self.detect_batch(images)
        single = not isinstance(x, (list, tuple)) and len(dets) == 1 and not is_batched(x)
        return dets[0] if single else dets

    def __call__(self, x):
        return self.detect(x)
