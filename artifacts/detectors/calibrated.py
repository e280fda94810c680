"""Base class of training-free detectors whose raw outputs are calibrated on generator data.

A subclass implements :meth:`CalibratedDetector.raw`: an :class:`~artifacts.io.ImageData` in, a
:class:`Raw` out (a raw map at the image's size where higher = more suspicious, one raw image
statistic, diagnostics and the preprocessing it applied), or a ``not_applicable``
:class:`~artifacts.types.Detection` when its precondition fails. This class maps both through the
Platt curves of its calibration file (``artifacts train TASK --model NAME``, recipe
``calibration`` in :mod:`artifacts.train.calibration`) and builds the Detection. Without a
calibration file (``weights="none"``) a fixed placeholder curve keeps outputs in ``[0, 1]``
and ``meta["calibrated"]`` says False.
"""
from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from artifacts.calibration import Logistic, Platt
from artifacts.detectors.base import Detector
from artifacts.types import Detection



@dataclass
class Raw:
    map: np.ndarray  # H x W float32 at the image's size, higher = more suspicious (or K x H x W features)
    stat: float | np.ndarray  # image-level raw statistic (or K features)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)


class CalibratedDetector(Detector):
    recipe: ClassVar[str | None] = "calibration"
    #: generator kinds the method is meant to see (calibration uses only these)
    calibration_kinds: ClassVar[tuple[str, ...]] = ("splice", "splice_blend", "copymove", "removal")
    #: how calibration samples are stored before the detector reads them: None (as generated,
    #: lossless) or "jpeg" (encoded and decoded again, so JPEG metadata exist)
    calibration_encoding: ClassVar[str | None] = None
    #: generator settings for calibration data (GeneratorConfig fields), e.g. JPEG-compressed hosts
    calibration_generator: ClassVar[dict | None] = None
    #: placeholder curve used without a calibration file
    uncalibrated: ClassVar[Logistic] = Platt(2.0, -6.0)

    def __init__(self, config, weights=None, device=None):
        super().__init__(config, weights, device)
        self.pixel_cal = self.image_cal = self.uncalibrated
        self.calibrated = False
        if weights is not None:
            try:
                cal = json.loads(weights.path.read_text())
                if cal.get("model") not in (None, self.model_id):
                    raise ValueError(f"it is a calibration of {cal.get('model')}, not {self.model_id}")
                self.pixel_cal, self.image_cal = Logistic.from_dict(cal["pixel"]), Logistic.from_dict(cal["image"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{weights.path}: not a usable calibration file ({exc!r})") from None
            # the operating threshold and output-neutral fields (tiles) leave the raw values alone
            neutral = {"threshold"} | {f.name for f in dataclasses.fields(config) if not f.metadata.get("output", True)}
            fitted = {k: v for k, v in cal.get("config", {}).items() if k not in neutral}
            changed = {k: v for k, v in fitted.items() if _as_json(getattr(config, k, v)) != v}
            if changed:
                warnings.warn(f"{self.model_id}: calibration {weights.id} was fitted with {changed}; "
                              "scores under other settings are not calibrated", stacklevel=3)
            self.calibrated = not changed

    def raw(self, image) -> Raw | Detection:  # pragma: no cover - abstract
        raise NotImplementedError

    def detect_one(self, image) -> Detection:
        t0 = time.perf_counter()
        out = self.raw(image)
        if isinstance(out, Detection):
            return out
        meta = {
            "preprocessing": out.preprocessing,
            "raw": {"image_stat": np.round(out.stat, 5).tolist(), **out.diagnostics},
            "calibrated": self.calibrated,
            "timings": {"compute_s": round(time.perf_counter() - t0, 6)},
        }
        return Detection(
            score=float(np.clip(self.image_cal(out.stat), 0.0, 1.0)),
            heatmap=np.clip(self.pixel_cal(out.map), 0.0, 1.0).astype(np.float32),
            threshold=self.threshold,
            meta=meta,
        )


def _as_json(value):
    """A config value as it reads back from a JSON file (tuples become lists)."""
    return json.loads(json.dumps(value, default=str))
