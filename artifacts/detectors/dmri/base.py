"""What every diffusion-MRI detector shares: the series in, one :class:`Detection` out.

An item of kind ``dwi`` is one series (NIfTI + ``.bval``/``.bvec`` + optional JSON sidecar);
:meth:`DWIDetector.load_item` reads it with :func:`artifacts.io.dmri.load_dwi` (gradient
table validated, a bad table is a one-line error naming the file). Subclasses implement
:meth:`DWIDetector.analyse` and return a :class:`DWIScores`; :func:`dwi_detection` turns it
into the shared result:

* ``score``: the series-level score, the highest volume score (a series is flagged when any
  of its volumes is);
* ``elements["volume"]`` (N,) per-volume scores, ``elements["slice"]`` (N, Z) per
  (volume, slice) scores, ``elements["volume/<kind>"]`` (N,) per-volume evidence of one
  artifact kind (names of :data:`artifacts.datasets.dmri_artifacts.KINDS`) when the detector
  tells kinds apart, ``elements["slice/<kind>"]`` (N, Z) the per-slice evidence of a kind
  that is local to slices (dropout, spike) when the detector has it (``elements["slice"]`` also
  carries the whole-volume kinds on every slice of a volume);
* ``categories``: ``<kind> ->`` the highest volume evidence of that kind;
* ``meta["flagged_volumes"]``: indices of volumes with score >= threshold,
  ``meta["series"]``: shape, b-values, voxel size, the file and the sidecar fields withheld.

All scores are in [0, 1] and share the detector's threshold. The input is never modified.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from artifacts.detectors.base import Detector
from artifacts.types import Detection


@dataclass
class DWIScores:
    """What a dMRI detector found in one series (all arrays in [0, 1])."""

    volume: np.ndarray  # (N,)
    slice: np.ndarray | None = None  # (N, Z); None -> each volume's score on all its slices
    kinds: dict[str, np.ndarray] = field(default_factory=dict)  # kind -> (N,)
    slices: dict[str, np.ndarray] = field(default_factory=dict)  # kind -> (N, Z), slice-local kinds only
    meta: dict[str, Any] = field(default_factory=dict)


def as_series(x: Any, bvals: Any = None, bvecs: Any = None):
    """A :class:`~artifacts.io.dmri.DWISeries` from a series, a NIfTI path, ``(data, bvals,
    bvecs)`` or an array with ``bvals``/``bvecs``."""
    import os

    from artifacts.io.dmri import DWISeries, from_arrays, load_dwi

    if isinstance(x, DWISeries):
        return x
    if isinstance(x, (str, os.PathLike)):
        return load_dwi(x, bvals, bvecs)
    if isinstance(x, (tuple, list)) and len(x) == 3:
        return from_arrays(*x)
    if bvals is None or bvecs is None:
        raise ValueError("a dMRI detector takes a DWISeries, a NIfTI path, (data, bvals, bvecs) or an array "
                         "with bvals= and bvecs=")
    return from_arrays(x, bvals, bvecs)


def series_meta(series) -> dict[str, Any]:
    """What a report may say about a series: no patient-identifying sidecar fields."""
    b = np.asarray(series.bvals, float)
    return {"path": series.path, "shape": list(series.shape), "voxel_mm": np.round(series.zooms, 4).tolist(),
            "bvals": np.round(b, 1).tolist(), "n_b0": int(series.b0_mask.sum()),
            "withheld_sidecar_fields": list(series.withheld), "notes": list(series.notes)}


def dwi_detection(scores: DWIScores, threshold: float, series) -> Detection:
    """The shared result of a dMRI detector (see the module docstring)."""
    n, nz = series.n_volumes, series.shape[2]
    vol = np.clip(np.asarray(scores.volume, np.float32), 0.0, 1.0)
    if vol.shape != (n,):
        raise ValueError(f"volume scores of shape {vol.shape} for {n} volumes")
    sl = np.repeat(vol[:, None], nz, axis=1) if scores.slice is None else np.asarray(scores.slice, np.float32)
    if sl.shape != (n, nz):
        raise ValueError(f"slice scores of shape {sl.shape} for {n} volumes x {nz} slices")
    elements = {"volume": vol, "slice": np.clip(sl, 0.0, 1.0)}
    categories = {}
    for kind, v in scores.kinds.items():
        v = np.clip(np.asarray(v, np.float32), 0.0, 1.0)
        if v.shape != (n,):
            raise ValueError(f"{kind} scores of shape {v.shape} for {n} volumes")
        elements[f"volume/{kind}"] = v
        categories[kind] = float(v.max(initial=0.0))
    for kind, m in scores.slices.items():
        m = np.clip(np.asarray(m, np.float32), 0.0, 1.0)
        if m.shape != (n, nz):
            raise ValueError(f"{kind} slice scores of shape {m.shape} for {n} volumes x {nz} slices")
        elements[f"slice/{kind}"] = m
    meta = {"series": series_meta(series), "flagged_volumes": np.flatnonzero(vol >= threshold).tolist(),
            **scores.meta}
    return Detection(score=float(vol.max(initial=0.0)), threshold=threshold, categories=categories,
                     elements=elements, meta=meta)


class DWIDetector(Detector):
    """Base class of the ``dmri`` task: items of kind ``dwi``, one series each."""

    item_kind = "dwi"

    def load_item(self, item):
        """Engine loader: the item's NIfTI with its gradient files and sidecar."""
        from artifacts.io.dmri import load_dwi

        f = item.files
        return load_dwi(f["image"], f.get("bval"), f.get("bvec"), sidecar=f.get("sidecar"))

    def analyse(self, series) -> DWIScores:  # pragma: no cover - abstract
        raise NotImplementedError

    def detect_one(self, series) -> Detection:
        return dwi_detection(self.analyse(series), self.threshold, series)

    def detect(self, x, bvals: Any = None, bvecs: Any = None) -> Detection:
        """Python API: a :class:`~artifacts.io.dmri.DWISeries`, a NIfTI path (gradient files found
        beside it or given), ``(data, bvals, bvecs)`` or an array with ``bvals``/``bvecs``."""
        return self.detect_batch([as_series(x, bvals, bvecs)])[0]
