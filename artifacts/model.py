"""What every registered model shares: config + weights + device, identity and fingerprint.

:class:`~artifacts.detectors.base.Detector` and :class:`~artifacts.restoration.base.Restorer`
derive from :class:`Model`. The engine calls only :meth:`Model.process_batch` and
:meth:`Model.fingerprint`, so detection and restoration share one batch runner, store and report.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

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


class Model:
    """Base class: a config dataclass, optional resolved weights and a device."""

    task: ClassVar[str] = ""
    name: ClassVar[str] = ""
    #: kind of item the engine should build for this model (see artifacts.engine.items)
    item_kind: ClassVar[str] = "image"

    def __init__(self, config: Any, weights: ResolvedWeights | None = None, device: str | None = None):
        self.config = config
        self.weights = weights
        self.device = pick_device(device)

    @property
    def model_id(self) -> str:
        return f"{self.task}/{self.name}"

    @property
    def weight_id(self) -> str:
        return self.weights.id if self.weights else "none"

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes the output: model, weights and the config fields that matter
        (fields marked ``metadata={"output": False}``, such as a tile size, are left out).
        The store key uses it."""
        config = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config)
                  if f.metadata.get("output", True)}
        return {"model": self.model_id, "weights": self.weight_id, "config": config}

    def base_meta(self) -> dict[str, Any]:
        return {"model": self.model_id, "weights": self.weight_id, "device": self.device}

    def process_batch(self, payloads: list) -> list:  # pragma: no cover - abstract
        """The engine's entry point: decoded items in, results (Detection / Restoration) out."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model_id}, weights={self.weight_id}, device={self.device})"


def is_batched(x) -> bool:
    """True for N,H,W,C arrays and B,C,H,W tensors (even with N == 1)."""
    return getattr(x, "ndim", 0) == 4
