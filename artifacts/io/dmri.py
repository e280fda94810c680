"""Diffusion MRI input: 4-D NIfTI with FSL ``.bval``/``.bvec``, BIDS discovery, gradient checks.

* :func:`load_dwi` reads a 4-D NIfTI (memory-mapped through nibabel: nothing
  but the header is read until data are used), finds ``<stem>.bval``,
  ``<stem>.bvec`` and ``<stem>.json`` beside it, validates the gradient table
  and returns a :class:`DWISeries`.  :func:`from_arrays` builds one from
  arrays (Python API).
* :func:`validate_gradients` checks a gradient table against the image: count
  or shape mismatch (b-vectors ``3 x N``, FSL layout, or ``N x 3``), NaN/Inf,
  negative b, a diffusion-weighted volume with a zero vector, all-zero or
  non-finite volumes, 3-D images.  Every problem is a :class:`DWIError`, a
  one-line ``"<file>: <reason>"``.  Vectors whose length is off 1 by more
  than ``tol`` are normalised with a note (``DWISeries.notes``).
* :func:`check_orientation` tests whether the gradient directions agree
  with the image axes (a flipped or permuted axis is a classic conversion
  error), in the spirit of Jeurissen et al. 2014 (MedIA 18:953) and the
  fibre coherence index of Schilling et al. 2019 (MRI 61:236): fit a tensor
  per voxel, then for every variant of the gradient table (axis flips and,
  optionally, axis permutations) measure how well principal directions of
  high-FA voxels continue into the neighbouring voxels they point to.  The
  correct table gives the most coherent field.  It returns a dict, never
  raises for a doubtful result.
* :func:`discover_bids` lists ``sub-*/[ses-*/]dwi/*_dwi.nii[.gz]`` series
  with their sidecars (BIDS inheritance from parent folders included).

**Conventions.** b-vectors are in the FSL convention (what dcm2niix writes):
unit vectors in the voxel axes of the image, with the first component
negated when the affine has a positive determinant (neurological storage).
``b <= b0_threshold`` (default 50 s/mm^2) counts as a b=0 volume whatever its
vector (Philips stores b=0.001 with a non-zero vector).

**Privacy.** Only acquisition fields in :data:`SIDECAR_FIELDS` are kept from a
JSON sidecar; everything else (PatientName/ID/BirthDate/Sex/Age, dates and
times, InstitutionName/Address, DeviceSerialNumber, StationName, free-text
SeriesDescription/ProtocolName, ...) is dropped and only its *name* recorded
in ``DWISeries.withheld``, so reports can say what was left out without
carrying it.

nibabel is imported only inside the functions that read files.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from ._errors import one_line

__all__ = [
    "B0_THRESHOLD",
    "BIDSSeries",
    "DWIError",
    "DWISeries",
    "SIDECAR_FIELDS",
    "check_orientation",
    "discover_bids",
    "filter_sidecar",
    "from_arrays",
    "load_dwi",
    "nifti_stem",
    "save_dwi",
    "validate_gradients",
]

B0_THRESHOLD = 50.0

#: acquisition fields copied from a sidecar; anything else is withheld (by name only)
SIDECAR_FIELDS = frozenset({
    "Modality", "MagneticFieldStrength", "ImagingFrequency", "Manufacturer", "ManufacturersModelName",
    "SoftwareVersions", "MRAcquisitionType", "ScanningSequence", "SequenceVariant", "ScanOptions",
    "PulseSequenceType", "SequenceName", "ImageType", "SliceThickness", "SpacingBetweenSlices",
    "EchoTime", "RepetitionTime", "FlipAngle", "PhaseEncodingDirection", "PhaseEncodingAxis",
    "InPlanePhaseEncodingDirectionDICOM", "SliceEncodingDirection", "SliceTiming",
    "MultibandAccelerationFactor", "ParallelReductionFactorInPlane", "ParallelReductionFactorOutOfPlane",
    "ParallelAcquisitionTechnique", "PartialFourier", "PartialFourierDirection", "PartialFourierEnabled",
    "TotalReadoutTime", "EstimatedTotalReadoutTime", "EffectiveEchoSpacing", "EstimatedEffectiveEchoSpacing",
    "EchoTrainLength", "AcquisitionMatrixPE", "ReconMatrixPE", "PixelBandwidth", "PercentPhaseFOV",
    "PercentSampling", "WaterFatShift", "ImageOrientationPatientDICOM", "PatientPosition",
    "DiffusionScheme", "NumberOfAverages", "ConversionSoftware", "ConversionSoftwareVersion",
})
_PE_AXES = {"i": 0, "j": 1, "k": 2}


class DWIError(ValueError):
    """A diffusion series that cannot be used: one line, ``"<file>: <reason>"``."""

    def __init__(self, filename: Union[str, os.PathLike], reason: str) -> None:
        self.filename = one_line(str(filename))
        self.reason = one_line(str(reason))
        super().__init__(f"{self.filename}: {self.reason}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.filename, self.reason))


@dataclass
class DWISeries:
    """One diffusion series: image data (X, Y, Z, N), gradient table and whitelisted sidecar.

    ``dataobj`` is what was read: a nibabel array proxy (memory-mapped, nothing
    loaded) or an ndarray.  :attr:`data` and :meth:`volume` return float32
    (scaled by the NIfTI slope/intercept).  ``bvecs`` is ``(N, 3)``, unit or zero
    rows; ``notes`` are non-fatal fixes made while loading; ``withheld`` names the
    sidecar fields that were not copied.
    """

    dataobj: Any
    affine: np.ndarray
    bvals: np.ndarray
    bvecs: np.ndarray
    path: Optional[str] = None
    sidecar: dict = field(default_factory=dict)
    withheld: tuple = ()
    notes: list = field(default_factory=list)

    @property
    def shape(self) -> tuple:
        return tuple(int(v) for v in self.dataobj.shape)

    @property
    def n_volumes(self) -> int:
        return self.shape[3]

    @property
    def data(self) -> np.ndarray:
        """The whole series as a float32 array (read now; not cached)."""
        return np.asarray(self.dataobj, dtype=np.float32)

    def volume(self, i: int) -> np.ndarray:
        """Volume ``i`` as float32 (X, Y, Z); reads only that volume from a proxy."""
        return np.asarray(self.dataobj[..., int(i)], dtype=np.float32)

    @property
    def zooms(self) -> np.ndarray:
        """Voxel sizes (mm) from the affine."""
        return np.sqrt((np.asarray(self.affine, float)[:3, :3] ** 2).sum(axis=0))

    @property
    def b0_mask(self) -> np.ndarray:
        return self.bvals <= B0_THRESHOLD

    @property
    def phase_encoding_axis(self) -> Optional[int]:
        """0/1/2 from ``PhaseEncodingDirection`` or ``PhaseEncodingAxis`` in the sidecar, else None."""
        pe = self.sidecar.get("PhaseEncodingDirection") or self.sidecar.get("PhaseEncodingAxis")
        return _PE_AXES.get(str(pe)[:1]) if pe else None

    def label(self) -> str:
        return self.path or "<arrays>"


@dataclass(frozen=True)
class BIDSSeries:
    """One BIDS diffusion series found by :func:`discover_bids` (paths as strings; None if absent)."""

    sub: str
    ses: Optional[str]
    run: Optional[str]
    image: str
    bval: Optional[str]
    bvec: Optional[str]
    json: Optional[str]


# ----------------------------------------------------------------------------- sidecar


def filter_sidecar(meta: dict) -> tuple[dict, tuple]:
    """Keep whitelisted acquisition fields; return ``(kept, withheld_names)``."""
    kept, withheld = {}, []
    for key, value in meta.items():
        if key in SIDECAR_FIELDS and _plain(value):
            kept[key] = value
        else:
            withheld.append(str(key))
    return kept, tuple(sorted(withheld))


def _plain(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return True
    return isinstance(value, list) and all(isinstance(v, (bool, int, float, str)) for v in value)


def _read_sidecar(path: Path) -> tuple[dict, tuple]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DWIError(path, f"cannot read sidecar ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise DWIError(path, f"sidecar is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise DWIError(path, "sidecar is not a JSON object")
    return filter_sidecar(meta)


# ----------------------------------------------------------------------------- gradients


def _read_table(path: Path, what: str) -> np.ndarray:
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except FileNotFoundError:
        raise DWIError(path, f"{what} file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DWIError(path, f"cannot read {what} file ({exc})") from None
    rows = [r.replace(",", " ").split() for r in text.splitlines() if r.strip()]
    try:
        values = [[float(v) for v in r] for r in rows]
    except ValueError as exc:
        raise DWIError(path, f"{what} file holds a non-number ({exc})") from None
    if not values:
        raise DWIError(path, f"{what} file is empty")
    if len({len(r) for r in values}) != 1:
        raise DWIError(path, f"{what} file has rows of unequal length {[len(r) for r in values]}")
    return np.array(values, dtype=np.float64)


def validate_gradients(bvals: Any, bvecs: Any, data: Any = None, *, filename: str = "<arrays>",
                       tol: float = 0.05, b0_threshold: float = B0_THRESHOLD,
                       notes: Optional[list] = None) -> tuple[np.ndarray, np.ndarray]:
    """Check a gradient table (and optionally the image) and return ``(bvals (N,), bvecs (N, 3))``.

    ``data`` may be the 4-D image (array or proxy: all-zero / non-finite volumes
    are then checked, one volume at a time), a shape tuple, or None.  Raises
    :class:`DWIError` naming ``filename``; appends non-fatal fixes to ``notes``.
    """
    notes = notes if notes is not None else []
    shape = None
    if data is not None:
        shape = tuple(int(v) for v in (data if isinstance(data, tuple) else data.shape))
        if len(shape) == 3 or (len(shape) == 4 and shape[3] == 1):
            raise DWIError(filename, f"{'x'.join(map(str, shape))} image is 3-D: a diffusion series "
                           "needs 4-D data (X, Y, Z, volumes)")
        if len(shape) != 4:
            raise DWIError(filename, f"image has {len(shape)} dimensions {shape}; expected 4 (X, Y, Z, volumes)")
    b = np.asarray(bvals, dtype=np.float64)
    if b.ndim == 2 and 1 in b.shape:
        b = b.ravel()
    if b.ndim != 1:
        raise DWIError(filename, f"b-values must be one row, got shape {b.shape}")
    g = np.asarray(bvecs, dtype=np.float64)
    n = b.size
    if g.ndim != 2 or 3 not in g.shape:
        raise DWIError(filename, f"b-vectors must be 3xN or Nx3, got shape {g.shape}")
    if g.shape[0] == 3 and g.shape[1] != 3:
        g = g.T
    elif g.shape == (3, 3):
        g = g.T  # FSL layout (3 rows) is the file convention; ambiguous only for N == 3
    if g.shape[0] != n:
        raise DWIError(filename, f"{n} b-values but {g.shape[0]} b-vectors")
    if shape is not None and shape[3] != n:
        raise DWIError(filename, f"{n} b-values/b-vectors but the image has {shape[3]} volumes")
    bad = np.flatnonzero(~np.isfinite(b))
    if bad.size:
        raise DWIError(filename, f"b-values contain NaN or Inf (volume {int(bad[0])})")
    bad = np.flatnonzero(~np.isfinite(g).all(axis=1))
    if bad.size:
        raise DWIError(filename, f"b-vectors contain NaN or Inf (volume {int(bad[0])})")
    bad = np.flatnonzero(b < 0)
    if bad.size:
        raise DWIError(filename, f"negative b-value {b[bad[0]]:g} (volume {int(bad[0])})")
    norms = np.linalg.norm(g, axis=1)
    zero = norms < 1e-3
    bad = np.flatnonzero(zero & (b > b0_threshold))
    if bad.size:
        raise DWIError(filename, f"volume {int(bad[0])} has b={b[bad[0]]:g} but a zero gradient vector")
    g = np.where(zero[:, None], 0.0, g)
    off = ~zero & (np.abs(norms - 1.0) > tol)
    if off.any():
        notes.append(f"normalised {int(off.sum())} b-vector(s) whose length was off 1 by more than {tol:g} "
                     f"(volumes {np.flatnonzero(off).tolist()[:8]})")
    g[~zero] /= norms[~zero, None]
    if data is not None and not isinstance(data, tuple):
        for i, vol in _volumes(data, range(n)):
            if not np.isfinite(vol).all():
                raise DWIError(filename, f"volume {i} contains NaN or Inf")
            if not vol.any():
                raise DWIError(filename, f"volume {i} is all zeros")
    return b, g


_WHOLE_READ_BYTES = 256 * 2**20


def _volumes(dataobj: Any, indices: Sequence[int]):
    """Yield ``(i, volume)``; small series are read at once (a gzip proxy re-inflates on every slice)."""
    shape = tuple(dataobj.shape)
    if isinstance(dataobj, np.ndarray) or int(np.prod(shape, dtype=np.int64)) * 4 <= _WHOLE_READ_BYTES:
        arr = np.asarray(dataobj)
        for i in indices:
            yield int(i), arr[..., int(i)]
    else:
        for i in indices:
            yield int(i), np.asarray(dataobj[..., int(i)])


# ----------------------------------------------------------------------------- loading


def nifti_stem(path: Path) -> str:
    name = path.name
    for ext in (".nii.gz", ".nii"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return path.stem


def load_dwi(path: Union[str, os.PathLike], bval: Union[str, os.PathLike, None] = None,
             bvec: Union[str, os.PathLike, None] = None, *, sidecar: Union[str, os.PathLike, None] = None,
             check_data: bool = True, tol: float = 0.05) -> DWISeries:
    """Read a 4-D NIfTI diffusion series with its FSL gradient files (found by stem when not given).

    ``check_data`` reads every volume once to refuse all-zero or non-finite
    volumes (memory stays one volume).  Errors are :class:`DWIError`.
    """
    p = Path(path)
    if not p.exists():
        raise DWIError(p, "file not found")
    if p.is_dir():
        raise DWIError(p, "is a directory, not a NIfTI file")
    try:
        import nibabel as nib
    except ImportError:  # pragma: no cover - nibabel is a core dependency
        raise ImportError("reading NIfTI needs nibabel: pip install 'artifacts-toolkit[dmri]'") from None
    try:
        img = nib.load(str(p))
        shape = tuple(int(v) for v in img.shape)
        affine = np.asarray(img.affine, dtype=np.float64)
        proxy = img.dataobj
    except Exception as exc:  # nibabel raises several types for bad files
        raise DWIError(p, f"not a readable NIfTI image ({one_line(str(exc)) or type(exc).__name__})") from None
    stem = p.with_name(nifti_stem(p))
    bval_p = Path(bval) if bval is not None else Path(f"{stem}.bval")
    bvec_p = Path(bvec) if bvec is not None else Path(f"{stem}.bvec")
    if len(shape) == 3:
        validate_gradients(np.zeros(1), np.zeros((1, 3)), shape, filename=str(p))
    if not bval_p.exists():
        raise DWIError(p, f"no b-value file (looked for {bval_p.name})")
    if not bvec_p.exists():
        raise DWIError(p, f"no b-vector file (looked for {bvec_p.name})")
    b = _read_table(bval_p, "b-value")
    g = _read_table(bvec_p, "b-vector")
    notes: list = []
    bvals, bvecs = validate_gradients(b, g, proxy if check_data else shape, filename=str(p), tol=tol,
                                      notes=notes)
    side_p = Path(sidecar) if sidecar is not None else Path(f"{stem}.json")
    meta, withheld = _read_sidecar(side_p) if side_p.exists() else ({}, ())
    return DWISeries(proxy, affine, bvals, bvecs, str(p), meta, withheld, notes)


def from_arrays(data: Any, bvals: Any, bvecs: Any, affine: Any = None, *, sidecar: Optional[dict] = None,
                name: str = "<arrays>", check_data: bool = True, tol: float = 0.05) -> DWISeries:
    """A :class:`DWISeries` from arrays (``data`` X, Y, Z, N; ``bvecs`` 3 x N or N x 3).

    The default affine is 1 mm, radiological (``diag(-1, 1, 1, 1)``): under the
    FSL convention the b-vectors are then read in voxel axes exactly as given.
    """
    arr = np.asarray(data)
    aff = np.diag([-1.0, 1.0, 1.0, 1.0]) if affine is None else np.asarray(affine, dtype=np.float64)
    if aff.shape != (4, 4):
        raise DWIError(name, f"affine must be 4x4, got shape {aff.shape}")
    notes: list = []
    b, g = validate_gradients(bvals, bvecs, arr if check_data else tuple(arr.shape), filename=name,
                              tol=tol, notes=notes)
    meta, withheld = filter_sidecar(dict(sidecar or {}))
    return DWISeries(arr, aff, b, g, None, meta, withheld, notes)


def save_dwi(path: Union[str, os.PathLike], series: DWISeries, keep: Any = None) -> Path:
    """Write the volumes of ``series`` where ``keep`` (bool (N,), default all) to ``path``
    (``.nii`` or ``.nii.gz``) with ``<stem>.bval``/``.bvec`` (FSL layout, cut to match) and, when
    the series has one, ``<stem>.json`` holding only the kept acquisition fields. A series read
    from a file keeps its header and stored data type. Files are written under temporary names
    and renamed, so an interrupted call leaves no half-written series. Returns ``path``."""
    import nibabel as nib

    keep = np.ones(series.n_volumes, bool) if keep is None else np.asarray(keep, bool)
    if keep.shape != (series.n_volumes,) or not keep.any():
        raise ValueError(f"keep must be {series.n_volumes} booleans with at least one True")
    target = Path(path)
    if not target.name.lower().endswith((".nii", ".nii.gz")):
        raise ValueError(f"{target}: a diffusion series is written as .nii or .nii.gz")
    target.parent.mkdir(parents=True, exist_ok=True)
    idx = np.flatnonzero(keep)
    proxy = series.dataobj
    if hasattr(proxy, "get_unscaled") and series.path:  # as stored, with the original header
        header = nib.load(series.path).header.copy()
        img = nib.Nifti1Image(np.asarray(proxy.get_unscaled())[..., idx], series.affine, header)
        img.header.set_slope_inter(*nib.load(series.path).header.get_slope_inter())
    else:
        img = nib.Nifti1Image(np.asarray(proxy, dtype=np.float32)[..., idx], series.affine)
    stem = target.with_name(nifti_stem(target))
    texts = {Path(f"{stem}.bval"): " ".join(f"{b:g}" for b in series.bvals[idx]) + "\n",
             Path(f"{stem}.bvec"): "\n".join(" ".join(f"{x:.6f}" for x in row) for row in series.bvecs[idx].T) + "\n"}
    if series.sidecar:
        texts[Path(f"{stem}.json")] = json.dumps(series.sidecar, indent=1) + "\n"
    tmp = target.with_name(f".{target.name}.tmp{target.name[target.name.index('.'):]}")
    nib.save(img, str(tmp))
    for p, text in texts.items():
        p.with_name(f".{p.name}.tmp").write_text(text)
    for p in texts:
        os.replace(p.with_name(f".{p.name}.tmp"), p)
    os.replace(tmp, target)
    return target


# ----------------------------------------------------------------------------- orientation


def _fit_tensor(series: DWISeries, mask_quantile: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-linear least-squares DTI fit inside a signal mask: (index (M, 3), FA (M,), e1 (M, 3))."""
    b, g = series.bvals, series.bvecs
    dw = b > B0_THRESHOLD
    if dw.sum() < 6 or (~dw).sum() < 1:
        raise ValueError("a tensor fit needs at least one b=0 and six diffusion-weighted volumes")
    b0 = np.mean([v.astype(np.float32) for _, v in _volumes(series.dataobj, np.flatnonzero(~dw))], axis=0)
    pos = b0[b0 > 0]
    if pos.size == 0:
        raise ValueError("the b=0 image is empty")
    # foreground: above a fraction of a robust high intensity (backgrounds are near zero in dMRI)
    mask = b0 > 0.2 * np.percentile(pos, 98)
    idx = np.argwhere(mask)
    s0 = b0[mask]
    sig = np.stack([v[mask].astype(np.float32) for _, v in _volumes(series.dataobj, np.flatnonzero(dw))],
                   axis=1)
    y = np.log(np.clip(sig, 1e-3, None) / s0[:, None])  # (M, K)
    gk, bk = g[dw], b[dw]
    design = -bk[:, None] * np.stack([gk[:, 0] ** 2, gk[:, 1] ** 2, gk[:, 2] ** 2, 2 * gk[:, 0] * gk[:, 1],
                                      2 * gk[:, 0] * gk[:, 2], 2 * gk[:, 1] * gk[:, 2]], axis=1)
    coef, *_ = np.linalg.lstsq(design, y.T, rcond=None)  # (6, M)
    dxx, dyy, dzz, dxy, dxz, dyz = coef
    tensor = np.stack([np.stack([dxx, dxy, dxz], -1), np.stack([dxy, dyy, dyz], -1),
                       np.stack([dxz, dyz, dzz], -1)], axis=1)
    evals, evecs = np.linalg.eigh(tensor)
    evals = np.clip(evals, 0, None)
    md = evals.mean(axis=1, keepdims=True)
    fa = np.sqrt(1.5 * ((evals - md) ** 2).sum(1) / np.maximum((evals ** 2).sum(1), 1e-12))
    return idx, fa, evecs[:, :, 2]


def _variants(permute: bool) -> list[tuple[str, np.ndarray]]:
    # (-1,-1,-1) and the identity give the same tensor, so four flip classes; show each with <= 1 flip
    flips = [("none", (1, 1, 1)), ("flip x", (-1, 1, 1)), ("flip y", (1, -1, 1)), ("flip z", (1, 1, -1))]
    perms = list(itertools.permutations(range(3))) if permute else [(0, 1, 2)]
    out = []
    for perm in perms:
        pname = "" if perm == (0, 1, 2) else "swap " + "".join("xyz"[i] for i in perm) + ", "
        for fname, f in flips:
            m = np.diag(np.array(f, float)) @ np.eye(3)[list(perm)]  # g -> m @ g: permute, then flip
            out.append(((pname + fname).removesuffix(", none") if pname else fname, m))
    return out


def check_orientation(series: DWISeries, *, permutations: bool = False, fa_threshold: float = 0.3,
                      min_voxels: int = 200, margin: float = 0.02) -> dict:
    """Which axis flip (or permutation) of the gradient table gives the most coherent fibre field.

    A tensor is fitted once; a variant ``M`` of the table (``g -> M g``, M
    orthogonal) rotates every fitted tensor to ``M D M^T``, so its principal
    direction is ``M e1`` and FA is unchanged.  For each variant the score is the
    mean, over voxels with FA >= ``fa_threshold``, of ``|e1(p) . e1(q)| * FA(q)``
    at the two voxels ``q`` reached by stepping one voxel from ``p`` along
    ``+-e1(p)`` (in millimetres, so anisotropic voxels are handled): a correct
    table makes fibres continue where they point.  Flipping all three axes is
    the identity for tensors, so there are 4 flip classes (24 with permutations).

    Variant names say what to do to the given table: ``"flip x"`` negates the
    x components; ``"swap yxz"`` makes the new (x, y, z) the given (y, x, z);
    ``"swap yxz, flip z"`` permutes, then negates.  ``"none"`` is the table as given.

    Returns ``{"best", "given_score", "best_score", "gain", "scores", "flipped",
    "reliable", "n_voxels", "fa_threshold", "reason"}``; ``flipped`` is True
    when another variant beats the given table by more than ``margin``
    (relative; ``gain`` is that relative difference); ``reliable`` is False
    (and ``flipped`` False) when too few anisotropic voxels exist.  On the six
    real series in ``../shared/data/dmri`` the given tables win by 7-20 % and an
    x-negated copy is caught every time; very small or noisy crops may not be.
    """
    try:
        idx, fa, e1 = _fit_tensor(series)
    except ValueError as exc:
        return {"best": None, "given_score": None, "best_score": None, "gain": None, "scores": {},
                "flipped": False, "reliable": False, "n_voxels": 0, "fa_threshold": fa_threshold,
                "reason": str(exc)}
    shape = series.shape[:3]
    # FSL convention: b-vectors are in voxel axes, x negated when the affine is not radiological
    det_flip = np.array([-1.0 if np.linalg.det(series.affine[:3, :3]) > 0 else 1.0, 1.0, 1.0])
    zooms = series.zooms
    fa_vol = np.zeros(shape, np.float32)
    fa_vol[tuple(idx.T)] = fa
    e_vol = np.zeros(shape + (3,), np.float32)
    wm = fa >= fa_threshold
    n_wm = int(wm.sum())
    result: dict = {"n_voxels": n_wm, "fa_threshold": fa_threshold}
    if n_wm < min_voxels:
        return {**result, "best": None, "given_score": None, "best_score": None, "gain": None, "scores": {},
                "flipped": False, "reliable": False,
                "reason": f"only {n_wm} voxels with FA >= {fa_threshold} (need {min_voxels})"}
    p = idx[wm]
    scores = {}
    for name, m in _variants(permutations):
        ev = (e1 @ m.T) * det_flip  # direction in voxel axes (mm)
        e_vol[tuple(idx.T)] = ev
        step = ev[wm] / zooms  # voxel-index units
        step = step / np.abs(step).max(axis=1, keepdims=True)  # one voxel along the dominant axis
        total = np.zeros(len(p))
        for sign in (1.0, -1.0):
            q = np.rint(p + sign * step).astype(int)
            ok = ((q >= 0) & (q < np.array(shape))).all(axis=1)
            qc = np.clip(q, 0, np.array(shape) - 1)
            dot = np.abs((e_vol[tuple(qc.T)] * ev[wm]).sum(axis=1))
            total += np.where(ok, dot * fa_vol[tuple(qc.T)], 0.0)
        scores[name] = float(total.mean() / 2)
    given = scores["none"]
    best = max(scores, key=scores.get)
    flipped = best != "none" and scores[best] > given * (1 + margin)
    return {**result, "best": best, "given_score": given, "best_score": scores[best],
            "gain": float(scores[best] / given - 1) if given > 0 else 0.0, "scores": scores,
            "flipped": bool(flipped), "reliable": True,
            "reason": (f"'{best}' is more coherent than the given table by "
                       f"{100 * (scores[best] / given - 1):.1f}%") if flipped else
            "the given table is the most coherent (within margin)"}


# ----------------------------------------------------------------------------- BIDS


_ENTITY = re.compile(r"(?:^|_)([a-zA-Z]+)-([a-zA-Z0-9]+)")


def _entities(name: str) -> dict:
    return dict(_ENTITY.findall(name))


def _inherited(image: Path, root: Path, ext: str) -> Optional[str]:
    """Same-stem file, else the nearest parent-level ``*dwi<ext>`` whose entities are a subset."""
    stem = nifti_stem(image)
    own = image.with_name(stem + ext)
    if own.exists():
        return str(own)
    ents = _entities(stem)
    folder = image.parent
    while True:
        for cand in sorted(folder.glob(f"*dwi{ext}")):
            ce = _entities(nifti_stem(cand) if ext.startswith(".nii") else cand.name[: -len(ext)])
            if cand.name in (f"dwi{ext}",) or (ce and all(ents.get(k) == v for k, v in ce.items())):
                return str(cand)
        if folder == root or root not in folder.parents:
            return None
        folder = folder.parent


def discover_bids(root: Union[str, os.PathLike]) -> list[BIDSSeries]:
    """Every ``sub-*/[ses-*/]dwi/*_dwi.nii[.gz]`` under ``root``, sorted, with bval/bvec/json paths."""
    r = Path(root)
    if not r.is_dir():
        raise DWIError(r, "folder not found" if not r.exists() else "not a folder")
    images = sorted({*r.glob("sub-*/dwi/*_dwi.nii"), *r.glob("sub-*/dwi/*_dwi.nii.gz"),
                     *r.glob("sub-*/ses-*/dwi/*_dwi.nii"), *r.glob("sub-*/ses-*/dwi/*_dwi.nii.gz")})
    if not images:
        raise DWIError(r, "no diffusion series found (expected sub-*/[ses-*/]dwi/*_dwi.nii[.gz])")
    out = []
    for img in images:
        ents = _entities(nifti_stem(img))
        out.append(BIDSSeries(sub=ents.get("sub", img.parts[len(r.parts)][4:]), ses=ents.get("ses"),
                              run=ents.get("run"), image=str(img), bval=_inherited(img, r, ".bval"),
                              bvec=_inherited(img, r, ".bvec"), json=_inherited(img, r, ".json")))
    return out
