"""What every synthetic-image detector shares: a content score plus a provenance record.

``score`` is P(generated) from the pixels alone. Beside it, and never mixed into it,
``meta["provenance"]`` records what the file itself says (container, JPEG quality, EXIF/XMP,
generation settings in PNG text chunks, C2PA manifests, signs of resizing: see
:mod:`artifacts.detectors.synthetic.provenance`), and ``meta["warnings"]`` lists the ways the
input falls outside what the model was built or trained on (a format or size it never saw).
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from artifacts.detectors.base import Detector
from artifacts.detectors.calibrated import CalibratedDetector
from artifacts.types import Detection


class SyntheticDetector(Detector):
    #: what the model saw when it was built/trained (formats, sizes); drives the input warnings
    trained_on: ClassVar[dict[str, Any]] = {}

    def analyse(self, image) -> Detection:  # pragma: no cover - abstract
        """The content analysis: pixels -> Detection (score = P(generated))."""
        raise NotImplementedError

    def detect_one(self, image) -> Detection:
        from artifacts.detectors.synthetic.provenance import input_warnings, provenance

        det = self.analyse(image)
        record = provenance(image)
        det.meta["provenance"] = record
        warnings = input_warnings(record, self.trained_on)
        if warnings:
            det.meta["warnings"] = warnings
        return det


class CalibratedSynthetic(SyntheticDetector, CalibratedDetector):
    """A training-free synthetic-image detector whose raw statistic is mapped to ``P(generated)``
    by a calibration file (the :class:`CalibratedDetector` machinery), plus the provenance record
    of :class:`SyntheticDetector`.

    ``raw`` returns its map on a coarse grid (windows or tiles) with
    ``preprocessing["grid"] = {"cells": [rows, cols], "box": [y0, x0, y1, x1]}``, the pixel box the
    grid cells cover; :meth:`analyse` calibrates the grid, then stretches it over the box and
    extends its edges to the input size (memory stays at grid size until the output itself).
    """

    recipe = "synthetic-calibration"
    #: names of the raw image features (one per entry of Raw.stat), recorded with the calibration
    feature_names: tuple[str, ...] = ("stat",)
    trained_on = {"formats": ["PNG", "JPEG"], "jpeg_quality_range": [75, 95], "min_side": 256,
                  "note": "calibrated on 256 px centre crops; training-free statistics, weak evidence"}

    def content(self, image) -> Detection:
        """Calibrated score and heatmap from the pixels alone (no provenance record)."""
        det = CalibratedDetector.detect_one(self, image)
        if det.heatmap is not None:
            grid = det.meta["preprocessing"]["grid"]
            det.heatmap = grid_to_image(det.heatmap, grid["box"], image.pixels.shape[:2])
        return det

    def analyse(self, image) -> Detection:
        return self.content(image)


def grid_to_image(grid: np.ndarray, box, shape) -> np.ndarray:
    """Stretch a grid of cell values over ``box`` (y0, x0, y1, x1; linear) and extend its edges
    to ``shape``: float32, values stay within the grid's range."""
    import cv2

    h, w = shape
    y0, x0, y1, x1 = (int(v) for v in box)
    y0, x0 = min(max(y0, 0), h - 1), min(max(x0, 0), w - 1)
    y1, x1 = min(max(y1, y0 + 1), h), min(max(x1, x0 + 1), w)
    inner = cv2.resize(np.ascontiguousarray(grid, dtype=np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    out = np.pad(inner, ((y0, h - y1), (x0, w - x1)), mode="edge")
    return np.clip(out, float(grid.min()), float(grid.max())).astype(np.float32)
