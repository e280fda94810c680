"""The detector interface shared by every task.

A detector is built by :func:`artifacts.create` from its config dataclass and (optional)
resolved weights. Subclasses implement :meth:`Detector.detect_one` (or override
:meth:`Detector.detect_batch` when true batching pays off); the engine, the API and the app
call only :meth:`detect_batch` / :meth:`detect`.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, ClassVar

from artifacts.types import Detection
from artifacts.weights import ResolvedWeights


def pick_device(device: str | None) -> str:
    """``None``/``"auto"`` -> ``cuda`` when available, else ``cpu``; anything else is checked."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    torch.device(device)  # validates the string
    return str(device)


class Detector:
    """Base class: config + weights in, :class:`Detection` out."""

    task: ClassVar[str] = ""
    name: ClassVar[str] = ""
    #: kind of item the engine should build for this detector (see artifacts.engine.items)
    item_kind: ClassVar[str] = "image"
    #: training recipe used by `artifacts train` (see artifacts.train.RECIPES); None = not trainable
    recipe: ClassVar[str | None] = None

    def __init__(self, config: Any, weights: ResolvedWeights | None = None, device: str | None = None):
        self.config = config
        self.weights = weights
        self.device = pick_device(device)
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")

    # -- identity -------------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return f"{self.task}/{self.name}"

    @property
    def weight_id(self) -> str:
        return self.weights.id if self.weights else "none"

    @property
    def threshold(self) -> float:
        """Operating threshold: the config's ``threshold`` if set, else the weights' default."""
        override = getattr(self.config, "threshold", None)
        if override is not None:
            return float(override)
        return self.weights.threshold if self.weights else 0.5

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes the output: model, weights and the config fields that matter
        (fields marked ``metadata={"output": False}``, such as a tile size, are left out).
        The store key uses it."""
        config = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config)
                  if f.metadata.get("output", True)}
        return {"model": self.model_id, "weights": self.weight_id, "config": config}

    def base_meta(self) -> dict[str, Any]:
        return {"model": self.model_id, "weights": self.weight_id, "device": self.device}

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

    def detect(self, x) -> Detection | list[Detection]:
        """Python API: a path, array, PIL image or tensor (single or batched) -> Detection(s)."""
        from artifacts.io import as_images

        images = as_images(x)
        dets = self.detect_batch(images)
        single = not isinstance(x, (list, tuple)) and len(dets) == 1 and not _is_batched(x)
        return dets[0] if single else dets

    def __call__(self, x):
        return self.detect(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_id}, weights={self.weight_id}, device={self.device})"


def _is_batched(x) -> bool:
    """True for N,H,W,C arrays and B,C,H,W tensors (even with N == 1)."""
    return getattr(x, "ndim", 0) == 4
