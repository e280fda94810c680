"""3D Gaussian-splatting PLY files: read, write back in the same format, and remove floaters.

A splat file (the 3DGS / INRIA layout) is a binary PLY whose ``vertex`` element holds per Gaussian
``x y z`` [``nx ny nz``] ``f_dc_0..2`` ``f_rest_*`` ``opacity`` (a logit) ``scale_0..2`` (logs)
``rot_0..3`` (a quaternion), possibly with more properties. open3d drops unknown properties, so
the file is read here with numpy structured arrays: every element, property, property order, type,
byte order and header line (comments included) is kept, and :func:`write_gaussian_ply` of an
unchanged :class:`GaussianPLY` gives back the input byte for byte. Binary PLY only (little or big
endian) with scalar properties (no lists); ASCII splat files are a clear error.

:func:`clean_gaussians` removes, in this order (each on what the previous steps kept, so every
Gaussian is counted once):

* ``opacity``: ``sigmoid(opacity) < min_opacity`` (default 0.005, the 3DGS pruning threshold);
* ``huge``: largest axis ``exp(scale)`` above ``max_scale`` when given, else above ``scale_factor``
  times its ``scale_quantile`` over the file (a relative limit removes nothing from a clean file);
* ``needle``: largest axis over the *middle* axis above ``max_aspect``. The middle axis, not the
  smallest, because flat disc-like splats (two long axes, one tiny) are normal in trained scenes,
  while needles have one long axis;
* ``radius`` and ``clusters``: isolated centres and small DBSCAN clusters, exactly as for point
  clouds (:func:`artifacts.recon3d.cleanup.spatial_steps`; these two need open3d).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .geometry import GeometryError

if TYPE_CHECKING:
    from .cleanup import CleanResult

__all__ = ["GaussianPLY", "clean_gaussians", "is_gaussian_ply", "read_gaussian_ply", "sh_dc_to_rgb",
           "write_gaussian_ply"]

_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
          "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
          "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}
_ORDERS = {"binary_little_endian": "<", "binary_big_endian": ">"}
REQUIRED = ("x", "y", "z", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")
SH_C0 = 0.28209479177387814  # zeroth spherical-harmonic band constant
_MAX_HEADER = 1 << 20


@dataclass
class GaussianPLY:
    """A parsed splat PLY. ``elements`` maps element name to a structured array (file order);
    ``header`` holds the raw header lines up to ``end_header``; ``tail`` any bytes after the data."""

    header: list[bytes]
    elements: dict[str, np.ndarray]
    tail: bytes = b""
    path: str = field(default="", compare=False)

    @property
    def vertices(self) -> np.ndarray:
        return self.elements["vertex"]

    @property
    def names(self) -> tuple[str, ...]:
        return self.vertices.dtype.names

    def _stack(self, names: list[str]) -> np.ndarray:
        return np.stack([self.vertices[n].astype(np.float64) for n in names], axis=-1)

    @property
    def positions(self) -> np.ndarray:
        return self._stack(["x", "y", "z"])

    @property
    def normals(self) -> np.ndarray | None:
        return self._stack(["nx", "ny", "nz"]) if {"nx", "ny", "nz"} <= set(self.names) else None

    @property
    def f_dc(self) -> np.ndarray | None:
        names = [f"f_dc_{i}" for i in range(3)]
        return self._stack(names) if set(names) <= set(self.names) else None

    @property
    def f_rest(self) -> np.ndarray:
        """(N, K) higher spherical-harmonic coefficients in index order (K may be 0)."""
        names = sorted((n for n in self.names if n.startswith("f_rest_")), key=lambda n: int(n[7:]))
        return self._stack(names) if names else np.zeros((len(self.vertices), 0))

    @property
    def opacity(self) -> np.ndarray:
        """The stored logit; ``sigmoid`` of it is the opacity."""
        return self.vertices["opacity"].astype(np.float64)

    @property
    def scales(self) -> np.ndarray:
        """(N, 3) stored log-scales; ``exp`` of them are the axis lengths."""
        return self._stack(["scale_0", "scale_1", "scale_2"])

    @property
    def rotations(self) -> np.ndarray:
        """(N, 4) stored quaternions (as written, usually w x y z and not normalised)."""
        return self._stack(["rot_0", "rot_1", "rot_2", "rot_3"])

    def select(self, keep: np.ndarray) -> "GaussianPLY":
        """A copy holding only the Gaussians where ``keep`` (bool mask or indices) selects."""
        elements = dict(self.elements)
        elements["vertex"] = self.vertices[keep]
        return replace(self, elements=elements)


def sh_dc_to_rgb(f_dc: np.ndarray) -> np.ndarray:
    """RGB in [0, 1] of the view-independent (DC) spherical-harmonic term."""
    return np.clip(0.5 + SH_C0 * f_dc, 0.0, 1.0)


def _parse_header(fh: Any, name: str) -> tuple[list[bytes], str, list[tuple[str, int, np.dtype]]]:
    lines: list[bytes] = []
    size = 0
    while True:
        line = fh.readline(_MAX_HEADER)
        size += len(line)
        if not line or size >= _MAX_HEADER:
            raise GeometryError(f"{name}: no PLY end_header (empty, truncated or not a PLY file)")
        if line.strip() == b"end_header":
            lines.append(line)
            break
        lines.append(line)
    text = [ln.decode("latin-1").split() for ln in lines]
    if not text[0] or text[0][0] != "ply":
        raise GeometryError(f"{name}: not a PLY file (no 'ply' magic)")
    fmt = next((t[1] for t in text if t and t[0] == "format" and len(t) > 1), None)
    if fmt not in _ORDERS:
        raise GeometryError(f"{name}: PLY format {fmt!r} is not supported for Gaussian splats (binary only)")
    order = _ORDERS[fmt]
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    for t in text:
        if not t:
            continue
        if t[0] == "element":
            if len(t) != 3 or not t[2].isdigit():
                raise GeometryError(f"{name}: malformed PLY element line {' '.join(t)!r}")
            elements.append((t[1], int(t[2]), []))
        elif t[0] == "property":
            if not elements:
                raise GeometryError(f"{name}: PLY property before any element")
            if len(t) != 3 or t[1] == "list":
                raise GeometryError(f"{name}: PLY property {' '.join(t[1:])!r} not supported (scalar properties only)")
            if t[1] not in _TYPES:
                raise GeometryError(f"{name}: unknown PLY property type {t[1]!r}")
            elements[-1][2].append((t[2], order + _TYPES[t[1]]))
    return lines, fmt, [(n, c, np.dtype(props)) for n, c, props in elements]


def _header_of(path: str) -> tuple[list[bytes], str, list[tuple[str, int, np.dtype]]]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: file not found")
    with open(path, "rb") as fh:
        return _parse_header(fh, path)


def is_gaussian_ply(path: str | os.PathLike[str]) -> bool:
    """True when the file is a PLY whose ``vertex`` element has the splat properties (header only)."""
    try:
        _, _, elements = _header_of(os.fspath(path))
    except (GeometryError, OSError):
        return False
    vertex = next((dt for n, _, dt in elements if n == "vertex"), None)
    return vertex is not None and set(REQUIRED) <= set(vertex.names)


def read_gaussian_ply(path: str | os.PathLike[str]) -> GaussianPLY:
    """Read a splat PLY; GeometryError (naming the file) when it is not one or is truncated."""
    name = os.fspath(path)
    if os.path.isfile(name) and os.path.getsize(name) == 0:
        raise GeometryError(f"{name}: empty file")
    if not os.path.isfile(name):
        raise FileNotFoundError(f"{name}: file not found")
    with open(name, "rb") as fh:
        lines, _, layout = _parse_header(fh, name)
        elements = {}
        for el_name, count, dtype in layout:
            data = np.fromfile(fh, dtype=dtype, count=count)
            if len(data) != count:
                raise GeometryError(f"{name}: truncated PLY: element {el_name!r} has {len(data)} of {count} records")
            elements[el_name] = data
        tail = fh.read()
    missing = [p for p in REQUIRED if "vertex" not in elements or p not in elements["vertex"].dtype.names]
    if missing:
        raise GeometryError(f"{name}: not a Gaussian-splat PLY (missing vertex properties {', '.join(missing)})")
    return GaussianPLY(header=lines, elements=elements, tail=tail, path=name)


def write_gaussian_ply(g: GaussianPLY, path: str | os.PathLike[str]) -> None:
    """Write ``g`` in its own format: same header lines (element counts updated), same properties,
    types and byte order."""
    target = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    header = []
    for line in g.header:
        words = line.split()
        if len(words) == 3 and words[0] == b"element" and words[1].decode("latin-1") in g.elements:
            count = len(g.elements[words[1].decode("latin-1")])
            line = re.sub(rb"\d+(\s*)$", str(count).encode() + rb"\1", line)
        header.append(line)
    with open(target, "wb") as fh:
        fh.write(b"".join(header))
        for data in g.elements.values():
            fh.write(data.tobytes())
        fh.write(g.tail)


def clean_gaussians(
    g: GaussianPLY,
    *,
    min_opacity: float | None = 0.005,
    max_scale: float | None = None,
    scale_quantile: float = 0.95,
    scale_factor: float | None = 10.0,
    max_aspect: float | None = 100.0,
    picture: bool = True,
    **spatial: Any,
) -> "CleanResult":
    """Remove floaters (see the module notes). Returns a
    :class:`~artifacts.recon3d.cleanup.CleanResult`: the kept Gaussians (a :class:`GaussianPLY`),
    the report, the keep mask and a before/after PNG of the centres coloured by their DC colour.

    ``None`` disables a criterion; ``spatial`` takes the keyword arguments of
    :func:`artifacts.recon3d.cleanup.spatial_steps` (``radius``, ``min_neighbors``, ``cluster_eps``,
    ``cluster_min_points``, ``min_cluster_fraction``; ``radius=0`` / ``cluster_eps=0`` disable them).
    """
    from .cleanup import CleanResult, apply_steps, before_after_png, make_report, spatial_steps

    points = g.positions
    with np.errstate(over="ignore"):
        axes = np.sort(np.exp(g.scales), axis=1)  # ascending axis lengths
    params: dict[str, Any] = {"min_opacity": min_opacity, "max_aspect": max_aspect}
    steps = []
    if min_opacity is not None:
        alpha = 0.5 * (1.0 + np.tanh(0.5 * g.opacity))  # sigmoid, without overflow
        steps.append(("opacity", lambda idx: alpha[idx] < min_opacity))
    limit = max_scale
    if limit is None and scale_factor is not None and len(points):
        limit = scale_factor * float(np.quantile(axes[:, 2], scale_quantile))
    params.update(max_scale=max_scale, scale_quantile=scale_quantile, scale_factor=scale_factor, scale_limit=limit)
    if limit is not None:
        steps.append(("huge", lambda idx: axes[idx, 2] > limit))
    if max_aspect is not None:
        aspect = axes[:, 2] / np.maximum(axes[:, 1], 1e-30)
        steps.append(("needle", lambda idx: aspect[idx] > max_aspect))
    steps += spatial_steps(points, params, **spatial)
    keep, counts = apply_steps(len(points), steps)
    colors = None if g.f_dc is None else sh_dc_to_rgb(g.f_dc)
    return CleanResult(
        cleaned=g if keep.all() else g.select(keep),
        report=make_report("gaussians", points, keep, counts, params),
        keep=keep,
        picture=before_after_png(points, keep, colors) if picture else None,
    )
