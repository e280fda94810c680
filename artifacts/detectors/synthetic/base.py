"""What every synthetic-image detector shares: a content score plus a provenance record.

``score`` is P(generated) from the pixels alone. Beside it, and never mixed into it,
``meta["provenance"]`` records what the file itself says (container, JPEG quality, EXIF/XMP,
generation settings in PNG text chunks, C2PA manifests, signs of resizing: see
:mod:`artifacts.detectors.synthetic.provenance`), and ``meta["warnings"]`` lists the ways the
input falls outside what the model was built or trained on (a format or size it never saw).
"""
from __future__ import annotations

from typing import Any, ClassVar

from artifacts.detectors.base import Detector
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
