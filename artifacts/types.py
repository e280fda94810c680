"""The data that flows through the toolkit: one result type for every detector.

A :class:`Detection` carries an image-level ``score`` in ``[0, 1]`` (higher = more artifact /
manipulated / synthetic), an optional ``heatmap`` (float32, the input's spatial size, higher =
more artifact), the operating ``threshold`` (the ``mask`` and ``label`` are derived from it, never
stored twice), optional ``categories`` (name -> score), optional per-element scores
(``elements``, e.g. per dMRI volume and slice) and ``meta`` (model, weight id, the preprocessing
actually applied, timings).

A detector whose precondition fails (a JPEG-grid method on a PNG, a colour method on a grey
image) returns ``Detection.not_applicable(reason)``: no score, no heatmap; fusion leaves it out.

On disk a detection is ``detection.json`` plus, when present, ``heatmap.png`` (16-bit grey, the
heatmap quantised to 1/65535) and ``mask.png`` (8-bit, 0/255); :meth:`Detection.load` reads them
back (the heatmap to within 1/131070).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

FORMAT_VERSION = 1
HEATMAP_FILE = "heatmap.png"
MASK_FILE = "mask.png"
JSON_FILE = "detection.json"


class Status(str, Enum):
    """Outcome of one item. Detectors return ``ok`` or ``not_applicable``; the engine records
    ``error`` for items that could not be read or processed."""

    OK = "ok"
    NOT_APPLICABLE = "not_applicable"
    ERROR = "error"


def _check_unit(name: str, value: float) -> float:
    value = float(value)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value


@dataclass
class Detection:
    score: float | None = None
    heatmap: np.ndarray | None = None
    threshold: float = 0.5
    status: Status = Status.OK
    reason: str | None = None
    categories: dict[str, float] = field(default_factory=dict)
    elements: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status = Status(self.status)
        self.threshold = _check_unit("threshold", self.threshold)
        if self.status is Status.OK and self.score is None:
            raise ValueError("a Detection with status 'ok' needs a score")
        if self.status is not Status.OK and (self.score is not None or self.heatmap is not None):
            raise ValueError(f"a Detection with status {self.status.value!r} has no score or heatmap")
        if self.score is not None:
            self.score = _check_unit("score", self.score)
        if self.heatmap is not None:
            h = np.asarray(self.heatmap, dtype=np.float32)
            if h.ndim != 2:
                raise ValueError(f"heatmap must be 2-D (H, W), got shape {h.shape}")
            if not np.isfinite(h).all() or h.min(initial=0.0) < 0.0 or h.max(initial=0.0) > 1.0:
                raise ValueError("heatmap values must be finite and in [0, 1]")
            self.heatmap = h
        self.categories = {str(k): _check_unit(f"category {k!r}", v) for k, v in self.categories.items()}
        self.elements = {str(k): np.asarray(v, dtype=np.float32) for k, v in self.elements.items()}

    # -- derived --------------------------------------------------------------------------
    @classmethod
    def not_applicable(cls, reason: str, meta: dict[str, Any] | None = None) -> "Detection":
        return cls(status=Status.NOT_APPLICABLE, reason=reason, meta=dict(meta or {}))

    @property
    def mask(self) -> np.ndarray | None:
        """Boolean H x W mask: ``heatmap >= threshold`` (None without a heatmap)."""
        return None if self.heatmap is None else self.heatmap >= self.threshold

    @property
    def label(self) -> bool | None:
        """Image-level decision ``score >= threshold`` (None when not applicable)."""
        return None if self.score is None else self.score >= self.threshold

    # -- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary; arrays other than the heatmap become nested lists."""
        return {
            "format_version": FORMAT_VERSION,
            "status": self.status.value,
            "reason": self.reason,
            "score": self.score,
            "threshold": self.threshold,
            "label": self.label,
            "categories": dict(self.categories),
            "elements": {k: v.tolist() for k, v in self.elements.items()},
            "heatmap_shape": None if self.heatmap is None else list(self.heatmap.shape),
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], heatmap: np.ndarray | None = None) -> "Detection":
        if d.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
            raise ValueError(f"detection format {d['format_version']} is newer than this package reads")
        return cls(
            score=d.get("score"),
            heatmap=heatmap,
            threshold=d.get("threshold", 0.5),
            status=d.get("status", "ok"),
            reason=d.get("reason"),
            categories=d.get("categories") or {},
            elements={k: np.asarray(v, dtype=np.float32) for k, v in (d.get("elements") or {}).items()},
            meta=d.get("meta") or {},
        )

    def to_files(self) -> dict[str, bytes]:
        """File name -> content: ``detection.json`` (+ ``heatmap.png``, ``mask.png``)."""
        from artifacts.io import encode_image

        files = {JSON_FILE: _json_bytes(self.to_dict())}
        if self.heatmap is not None:
            files[HEATMAP_FILE] = encode_image(np.round(self.heatmap * 65535.0).astype(np.uint16))
            files[MASK_FILE] = encode_image(self.mask)
        return files

    def save(self, directory: str | os.PathLike) -> list[str]:
        """Write :meth:`to_files` into ``directory``; return the file names."""
        return write_files(directory, self.to_files())

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "Detection":
        directory = Path(directory)
        d = json.loads((directory / JSON_FILE).read_text())
        heatmap = None
        if d.get("heatmap_shape") is not None:
            import cv2

            raw = cv2.imread(str(directory / HEATMAP_FILE), cv2.IMREAD_UNCHANGED)
            if raw is None or raw.dtype != np.uint16:
                raise ValueError(f"{directory / HEATMAP_FILE}: missing or not a 16-bit heatmap")
            heatmap = raw.astype(np.float32) / 65535.0
        return cls.from_dict(d, heatmap=heatmap)


def write_files(directory: str | os.PathLike, files: dict[str, bytes]) -> list[str]:
    """Write name -> bytes into ``directory`` (created); return the names."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (directory / name).write_bytes(content)
    return list(files)


def _json_bytes(d: dict[str, Any]) -> bytes:
    return (json.dumps(d, indent=1, default=json_default) + "\n").encode()


def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars/arrays, paths and enums (used by every writer)."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, Enum)):
        return str(obj.value if isinstance(obj, Enum) else obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


RESTORED_FILE = "restored.png"
RESTORATION_JSON = "restoration.json"


@dataclass
class Restoration:
    """One restored image: the output ``image`` (H', W', C uint8 or uint16; H' = H * scale for
    super-resolution), the ``mask`` actually repaired (H, W bool in the input's size; None when
    the whole image was processed, e.g. super-resolution) and ``meta`` (model, weights, the
    mask's source and threshold, tiling, timings). ``status`` / ``reason`` as in
    :class:`Detection` (``not_applicable``: nothing to repair was given or found)."""

    image: np.ndarray | None = None
    mask: np.ndarray | None = None
    status: Status = Status.OK
    reason: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.status = Status(self.status)
        if self.status is Status.OK and self.image is None:
            raise ValueError("a Restoration with status 'ok' needs an image")
        if self.image is not None:
            img = np.asarray(self.image)
            if img.dtype not in (np.uint8, np.uint16) or img.ndim not in (2, 3):
                raise ValueError(f"restored image must be H,W(,C) uint8/uint16, got {img.dtype} {img.shape}")
            self.image = img
        if self.mask is not None:
            m = np.asarray(self.mask)
            if m.ndim != 2:
                raise ValueError(f"mask must be 2-D (H, W), got shape {m.shape}")
            self.mask = m.astype(bool)

    @classmethod
    def not_applicable(cls, reason: str, meta: dict[str, Any] | None = None) -> "Restoration":
        return cls(status=Status.NOT_APPLICABLE, reason=reason, meta=dict(meta or {}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "status": self.status.value,
            "reason": self.reason,
            "image_shape": None if self.image is None else list(self.image.shape),
            "mask_shape": None if self.mask is None else list(self.mask.shape),
            "mask_fraction": None if self.mask is None else float(self.mask.mean()),
            "meta": self.meta,
        }

    def to_files(self) -> dict[str, bytes]:
        """File name -> content: ``restoration.json``, ``restored.png`` (+ ``mask.png``)."""
        from artifacts.io import encode_image

        files = {RESTORATION_JSON: _json_bytes(self.to_dict())}
        if self.image is not None:
            files[RESTORED_FILE] = encode_image(self.image)
        if self.mask is not None:
            files[MASK_FILE] = encode_image(self.mask)
        return files

    def save(self, directory: str | os.PathLike) -> list[str]:
        """Write :meth:`to_files` into ``directory``; return the file names."""
        return write_files(directory, self.to_files())

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "Restoration":
        from artifacts.io import load_image

        directory = Path(directory)
        d = json.loads((directory / RESTORATION_JSON).read_text())
        if d.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
            raise ValueError(f"restoration format {d['format_version']} is newer than this package reads")
        image = load_image(directory / RESTORED_FILE).pixels if d.get("image_shape") else None
        mask = load_image(directory / MASK_FILE).pixels > 0 if d.get("mask_shape") else None
        if mask is not None and mask.ndim == 3:
            mask = mask[..., 0]
        return cls(image=image, mask=mask, status=d.get("status", "ok"), reason=d.get("reason"),
                   meta=d.get("meta") or {})
