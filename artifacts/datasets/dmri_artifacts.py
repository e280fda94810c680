"""Seeded, physically grounded artifacts in diffusion MRI series, with per-volume and per-slice labels.

:func:`simulate` takes a clean-ish series (X, Y, Z, N magnitude images with
b-values and b-vectors) and returns a corrupted float32 copy plus
:class:`DWIArtifactLabels`.  Slices run along the third array axis (how
dcm2niix stores 2-D multi-slice EPI); the phase-encoding (PE) axis comes from
the sidecar (``PhaseEncodingDirection``/``PhaseEncodingAxis``) or ``pe_axis``
(default 1, ``j``); the readout axis is the other in-plane axis.  b-vectors
are read in voxel axes (FSL convention).

========== ================================================ ======================== =============================
kind       physical cause (how it is made)                  labelled                 severity ``s`` scales
========== ================================================ ======================== =============================
dropout    bulk motion during the diffusion-encoding        the dropped slices of    depth of the signal loss
           gradients dephases the whole slice: signal of    chosen DW volumes        (factor ``1 - s*d``,
           all slices excited in one shot is lost           (b=0 exempt)             ``d`` ~ U(0.5, 1))
           (multiplicative, with a mild in-plane ramp);
           shots follow the interleaved / multiband order
           (``SliceTiming`` when known)
motion     inter-volume rigid head motion: whole volumes    whole chosen volumes     rotation (up to 3 deg/axis)
           rotated/translated in millimetres                                         and translation (up to 3 mm)
           (``scipy.ndimage.affine_transform``); b-vectors
           are *not* rotated with the head
venetian   interleaved acquisition with motion / spin       the odd (or even)        intensity change of one
           history between the two slice packages: one      slices of chosen         package (``1 - s*a``,
           package is darker ("venetian blind")             volumes                  ``a`` ~ U(0.3, 0.7))
ghosting   Nyquist N/2 ghost: a phase error between odd     all signal slices of     phase error (constant +
           and even EPI echoes, applied per slice to odd    chosen volumes           linear along readout), up to
           k-space lines in (readout, ky) hybrid space                               ~0.6 rad + 0.5 rad ramp
spike      a k-space spike (RF burst, static discharge):    one slice per chosen     spike amplitude
           one k-space sample of one slice gets a large     volume
           value -> herringbone stripes over that slice
gibbs      k-space truncation: the in-plane k-space is      every slice that         kept fraction of k-space
           cut to a central fraction and zero-filled back,  changes, all volumes     ``1 - 0.5 s`` per axis
           ringing at sharp edges
eddy       eddy currents of the diffusion gradients: a      every DW volume (b=0     displacement (of order 5-10
           field offset linear in position, proportional    exempt)                  % of the PE matrix at s=1),
           to the gradient (``e = c * g``), shifts signal                            scaled by b / b_max
           along PE: shear (readout term), scale (PE
           term), slice-dependent translation, with the
           Jacobian intensity change
vibration  table vibration (Gallichan et al. 2010): in      DW volumes whose         depth of the loss
           volumes whose gradient lies near one direction   gradient is within       (``1 - s*L*|g.u|^2*W``)
           (default x, left-right) phase dispersion loses   ``angle`` of the
           signal in a smooth region (posterior-superior    direction, slices
           by default)                                      reached by the region
noise      thermal noise on the complex signal seen in      everything that changes  sigma = ``s * 0.08 *`` mean
           magnitude: ``sqrt((S + n1)^2 + n2^2)`` (Rician)                           b=0 foreground signal
========== ================================================ ======================== =============================

**Labels.** ``slices[v, z]`` is True where the artifact was applied *and* the
slice changed (an empty slice multiplied by a dropout factor is not labelled);
``volumes[v]`` is True where any slice of ``v`` is.  Outside the labels the
output equals the input (as float32) exactly; ``gibbs`` and ``noise`` act on
every volume, so nearly every slice is labelled.  ``gibbs`` draws no random
numbers (truncation is a property of the acquisition, not of chance).
``severity == 0`` returns an unchanged copy with empty labels.

**Determinism.** All random numbers come from ``SeedSequence([seed, KINDS.index(kind)])``
and are drawn independently of ``severity``: for one seed a higher severity is
the same artifact, stronger.  The input array is never modified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

__all__ = ["KINDS", "DWIArtifactLabels", "simulate"]

KINDS = ("dropout", "motion", "venetian", "ghosting", "spike", "gibbs", "eddy", "vibration", "noise")
B0_THRESHOLD = 50.0


@dataclass(frozen=True)
class DWIArtifactLabels:
    """Ground truth of one :func:`simulate` call."""

    kind: str
    severity: float
    seed: int
    volumes: np.ndarray  # (N,) bool
    slices: np.ndarray  # (N, Z) bool
    params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready form (labels as index lists)."""
        return {"kind": self.kind, "severity": self.severity, "seed": self.seed,
                "volumes": np.flatnonzero(self.volumes).tolist(),
                "slices": [[int(v), int(z)] for v, z in np.argwhere(self.slices)], "params": self.params}


def _unpack(series: Any, bvals: Any, bvecs: Any, pe_axis: Optional[int], zooms: Any,
            slice_timing: Any) -> tuple:
    if hasattr(series, "dataobj") and hasattr(series, "bvals"):
        data = series.data  # a fresh float32 array
        b, g = np.asarray(series.bvals, float), np.asarray(series.bvecs, float)
        pe = series.phase_encoding_axis if pe_axis is None else pe_axis
        zooms = series.zooms if zooms is None else zooms
        st = series.sidecar.get("SliceTiming") if slice_timing is None else slice_timing
    else:
        if isinstance(series, (tuple, list)):
            series, bvals, bvecs = series
        data = np.array(series, dtype=np.float32, copy=True)
        if bvals is None or bvecs is None:
            raise ValueError("simulate needs bvals and bvecs with a bare array")
        b = np.asarray(bvals, float).ravel()
        g = np.asarray(bvecs, float)
        g = g.T if g.shape[0] == 3 and g.shape[1] != 3 else g
        pe, st = pe_axis, slice_timing
    if data.ndim != 4:
        raise ValueError(f"simulate needs 4-D data (X, Y, Z, N), got shape {data.shape}")
    if b.shape != (data.shape[3],) or g.shape != (data.shape[3], 3):
        raise ValueError(f"gradient table {b.shape}/{g.shape} does not match {data.shape[3]} volumes")
    pe = 1 if pe is None else int(pe)
    if pe not in (0, 1):
        raise ValueError(f"pe_axis must be an in-plane axis (0 or 1), got {pe}")
    z = np.ones(3) if zooms is None else np.asarray(zooms, float)[:3]
    return data, b, g, pe, z, st


def _pick(rng: np.random.Generator, eligible: np.ndarray, fraction: float) -> np.ndarray:
    order = rng.permutation(eligible)
    k = max(1, int(round(fraction * len(eligible)))) if len(eligible) else 0
    return np.sort(order[:k])


def _slice_shots(nz: int, timing: Any, multiband: int) -> list[np.ndarray]:
    """Groups of slices excited together, in acquisition order."""
    if timing is not None and len(timing) == nz:
        t = np.round(np.asarray(timing, float), 4)
        return [np.flatnonzero(t == v) for v in np.unique(t)]
    mb = max(1, int(multiband))
    per = int(np.ceil(nz / mb))
    order = list(range(0, per, 2)) + list(range(1, per, 2))  # interleaved within a band
    return [np.array([s + k * per for k in range(mb) if s + k * per < nz]) for s in order]


def _ref_signal(data: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    b0 = data[..., b <= B0_THRESHOLD].mean(axis=3) if (b <= B0_THRESHOLD).any() else data.mean(axis=3)
    pos = b0[b0 > 0]
    if pos.size == 0:
        return 1.0, b0 > 0
    fg = b0 > 0.2 * np.percentile(pos, 98)
    return float(b0[fg].mean()), fg


def _inplane_fft(sl: np.ndarray) -> np.ndarray:
    return np.fft.fft2(sl, axes=(0, 1))


def simulate(series: Any, kind: str, severity: float = 0.5, seed: int = 0, *, bvals: Any = None,
             bvecs: Any = None, fraction: float = 0.25, pe_axis: Optional[int] = None, zooms: Any = None,
             slice_timing: Optional[Sequence[float]] = None, multiband: int = 1,
             direction: Sequence[float] = (1.0, 0.0, 0.0),
             angle: float = 40.0) -> tuple[np.ndarray, DWIArtifactLabels]:
    """Corrupt a copy of a diffusion series with one artifact ``kind`` (see the module table).

    ``series``: a :class:`~artifacts.io.dmri.DWISeries`, a ``(data, bvals,
    bvecs)`` tuple, or an array with ``bvals``/``bvecs``.  ``fraction`` of the
    eligible volumes are affected (at least one) for dropout, motion, venetian,
    ghosting and spike; gibbs, eddy and noise act on all eligible volumes and
    vibration on those within ``angle`` degrees of ``direction`` (in the b-vector frame).
    Returns ``(corrupted float32 (X, Y, Z, N), labels)``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    s = float(severity)
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"severity must be in [0, 1], got {severity}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    data, b, g, pe, zooms, timing = _unpack(series, bvals, bvecs, pe_axis, zooms, slice_timing)
    clean = data
    out = data.copy()
    nx, ny, nz, n = data.shape
    applied = np.zeros((n, nz), bool)
    params: dict = {"pe_axis": pe}
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), KINDS.index(kind)]))
    dw = np.flatnonzero(b > B0_THRESHOLD)
    every = np.arange(n)
    if s > 0:
        _KIND_FUNCS[kind](out, clean, b, g, s, rng, applied, params,
                          dict(dw=dw, every=every, fraction=fraction, pe=pe, zooms=zooms, timing=timing,
                               multiband=multiband, direction=direction, angle=angle))
    changed = (out != clean).any(axis=(0, 1)).T  # (N, Z)
    slices = applied & changed
    out[:, :, ~slices.T] = clean[:, :, ~slices.T]  # nothing changes outside the labels
    labels = DWIArtifactLabels(kind, s, int(seed), slices.any(axis=1), slices, params if s > 0 else {})
    return out, labels


# ----------------------------------------------------------------------------- kinds
# each works in place on `out` (a copy), marks `applied` (N, Z) and fills `params`


def _dropout(out, clean, b, g, s, rng, applied, params, o):
    nx, ny, nz, n = out.shape
    vols = _pick(rng, o["dw"], o["fraction"])
    shots = _slice_shots(nz, o["timing"], o["multiband"])
    xx, yy = np.meshgrid(np.linspace(-1, 1, nx), np.linspace(-1, 1, ny), indexing="ij")
    per = {}
    for v in vols:
        start = int(rng.integers(len(shots)))
        count = int(rng.integers(1, 3))
        depth = rng.uniform(0.5, 1.0)
        theta = rng.uniform(0, 2 * np.pi)
        ramp = 0.85 + 0.15 * (np.cos(theta) * xx + np.sin(theta) * yy)  # in [0.7, 1]
        zs = np.unique(np.concatenate([shots[(start + k) % len(shots)] for k in range(count)]))
        factor = (1.0 - s * depth * ramp).astype(np.float32)
        for z in zs:
            out[:, :, z, v] = clean[:, :, z, v] * factor
            applied[v, z] = True
        per[int(v)] = {"slices": zs.tolist(), "depth": round(float(depth), 4)}
    params.update(volumes=per, multiband=int(o["multiband"]), slice_order="SliceTiming"
                  if o["timing"] is not None and len(o["timing"]) == nz else "interleaved")


def _motion(out, clean, b, g, s, rng, applied, params, o):
    from scipy.ndimage import affine_transform

    nx, ny, nz, n = out.shape
    vols = _pick(rng, o["every"], o["fraction"])
    zooms = o["zooms"]
    centre = (np.array(out.shape[:3]) - 1) / 2.0
    per = {}
    for v in vols:
        u = rng.uniform(-1, 1, 6)
        ang = np.deg2rad(3.0 * s * u[:3])
        trans = 3.0 * s * u[3:]  # mm
        cx, cy, cz = np.cos(ang)
        sx, sy, sz = np.sin(ang)
        rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
        ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
        rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
        rot = rz @ ry @ rx
        m = np.diag(1 / zooms) @ rot.T @ np.diag(zooms)  # output index -> input index
        offset = centre - m @ centre - (m @ (trans / zooms))
        out[..., v] = affine_transform(clean[..., v], m, offset=offset, order=1, mode="constant", cval=0.0)
        applied[v, :] = True
        per[int(v)] = {"rotation_deg": np.round(np.rad2deg(ang), 4).tolist(),
                       "translation_mm": np.round(trans, 4).tolist()}
    params.update(volumes=per)


def _venetian(out, clean, b, g, s, rng, applied, params, o):
    nz = out.shape[2]
    vols = _pick(rng, o["every"], o["fraction"])
    per = {}
    for v in vols:
        parity = int(rng.integers(2))
        a = rng.uniform(0.3, 0.7)
        zs = np.arange(parity, nz, 2)
        out[:, :, zs, v] = clean[:, :, zs, v] * np.float32(1.0 - s * a)
        applied[v, zs] = True
        per[int(v)] = {"parity": "odd" if parity else "even", "loss": round(float(a), 4)}
    params.update(volumes=per)


def _ghosting(out, clean, b, g, s, rng, applied, params, o):
    nx, ny, nz, n = out.shape
    pe = o["pe"]
    ro = 1 - pe
    vols = _pick(rng, o["every"], o["fraction"])
    npe, nro = out.shape[pe], out.shape[ro]
    odd = (np.arange(npe) % 2 == 1)
    x = (np.arange(nro) - nro / 2) / nro
    per = {}
    for v in vols:
        phi0 = rng.uniform(0.3, 0.6) * rng.choice([-1, 1])
        phi1 = rng.uniform(-0.5, 0.5)
        phase = np.exp(1j * s * (phi0 + phi1 * 2 * x))  # along readout
        mod = np.ones((nro, npe), complex)
        mod[:, odd] = phase[:, None]
        if pe == 0:
            mod = mod.T
        for z in range(nz):
            sl = clean[:, :, z, v]
            if not sl.any():
                continue
            hyb = np.fft.fft(sl, axis=pe) * mod  # (readout, ky) hybrid space
            out[:, :, z, v] = np.abs(np.fft.ifft(hyb, axis=pe)).astype(np.float32)
            applied[v, z] = True
        per[int(v)] = {"phase0_rad": round(float(phi0), 4), "phase_ramp_rad": round(float(phi1), 4)}
    params.update(volumes=per)


def _spike(out, clean, b, g, s, rng, applied, params, o):
    nx, ny, nz, n = out.shape
    vols = _pick(rng, o["every"], o["fraction"])
    per = {}
    for v in vols:
        z = int(rng.integers(nz))
        kx = int(rng.integers(max(1, nx // 10), nx // 2)) * int(rng.choice([-1, 1]))
        ky = int(rng.integers(max(1, ny // 10), ny // 2)) * int(rng.choice([-1, 1]))
        amp = rng.uniform(0.3, 1.0)
        ph = rng.uniform(0, 2 * np.pi)
        sl = clean[:, :, z, v]
        k = _inplane_fft(sl)
        mean = float(np.abs(k[0, 0])) / (nx * ny) or float(np.abs(clean[..., v]).mean()) or 1.0
        k[kx % nx, ky % ny] += s * amp * mean * nx * ny * np.exp(1j * ph)
        out[:, :, z, v] = np.abs(np.fft.ifft2(k, axes=(0, 1))).astype(np.float32)
        applied[v, z] = True
        per[int(v)] = {"slice": z, "k": [kx % nx, ky % ny], "amplitude": round(float(amp), 4)}
    params.update(volumes=per)


def _gibbs(out, clean, b, g, s, rng, applied, params, o):
    nx, ny, nz, n = out.shape
    keep = 1.0 - 0.5 * s
    masks = []
    for size in (nx, ny):
        f = np.abs(np.fft.fftfreq(size) * size)
        masks.append(f <= keep * size / 2)
    km = masks[0][:, None] & masks[1][None, :]
    if km.all():
        params.update(keep_fraction=round(keep, 4))
        return
    for v in range(n):
        k = np.fft.fft2(clean[..., v], axes=(0, 1))
        k[~km] = 0
        out[..., v] = np.abs(np.fft.ifft2(k, axes=(0, 1))).astype(np.float32)
        applied[v, :] = True
    params.update(keep_fraction=round(keep, 4), kept_lines=[int(masks[0].sum()), int(masks[1].sum())])


def _eddy(out, clean, b, g, s, rng, applied, params, o):
    from scipy.ndimage import map_coordinates

    nx, ny, nz, n = out.shape
    pe = o["pe"]
    ro = 1 - pe
    npe = out.shape[pe]
    coupling = rng.uniform(0.5, 1.0, 3) * rng.choice([-1, 1], 3)  # per axis: readout, pe, slice terms
    offset = rng.uniform(-0.3, 0.3, 3)  # gradient -> B0-offset (translation) coupling
    scale = 0.1 * npe  # displacement (voxels) of a unit term at s=1, b=b_max
    bmax = float(b.max()) if b.size else 1.0
    grid = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    norm = [(grid[a] - (out.shape[a] - 1) / 2) / out.shape[a] for a in range(3)]  # in [-0.5, 0.5]
    axes = [ro, pe, 2]
    per = {}
    for v in o["dw"]:
        gv = g[v]
        w = s * b[v] / bmax * scale
        disp = w * (coupling[0] * gv[axes[0]] * norm[axes[0]] + coupling[1] * gv[axes[1]] * norm[axes[1]]
                    + coupling[2] * gv[axes[2]] * norm[2] + float(offset @ gv))
        jac = 1.0 + np.gradient(disp, axis=pe)
        coords = [grid[0].astype(float), grid[1].astype(float), grid[2].astype(float)]
        coords[pe] = coords[pe] - disp
        warped = map_coordinates(clean[..., v], coords, order=1, mode="constant", cval=0.0)
        out[..., v] = (warped / np.clip(jac, 0.2, None)).astype(np.float32)
        applied[v, :] = True
        per[int(v)] = {"max_shift_vox": round(float(np.abs(disp).max()), 4)}
    params.update(coupling=np.round(coupling, 4).tolist(), offset=np.round(offset, 4).tolist(), volumes=per)


def _vibration(out, clean, b, g, s, rng, applied, params, o):
    nx, ny, nz, n = out.shape
    u = np.asarray(o["direction"], float)
    u = u / np.linalg.norm(u)
    cos_thr = np.cos(np.deg2rad(o["angle"]))
    align = np.abs(g @ u)
    vols = [int(v) for v in o["dw"] if align[v] >= cos_thr]
    # a smooth region: posterior (low index along axis 1) and superior (high slice index) by default
    centre = np.array([nx * rng.uniform(0.35, 0.65), ny * rng.uniform(0.2, 0.4), nz * rng.uniform(0.5, 0.8)])
    sigma = np.array([nx, ny, nz]) * rng.uniform(0.15, 0.25, 3)
    loss = rng.uniform(0.5, 0.8)
    grid = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
    w = np.exp(-0.5 * sum(((grid[a] - centre[a]) / sigma[a]) ** 2 for a in range(3)))
    w[w < 0.05] = 0.0
    reached = w.any(axis=(0, 1))
    per = {}
    for v in vols:
        factor = (1.0 - s * loss * align[v] ** 2 * w).astype(np.float32)
        out[..., v] = clean[..., v] * factor
        applied[v, reached] = True
        per[v] = {"alignment": round(float(align[v]), 4)}
    params.update(direction=np.round(u, 4).tolist(), angle_deg=float(o["angle"]), loss=round(float(loss), 4),
                  centre_vox=np.round(centre, 2).tolist(), sigma_vox=np.round(sigma, 2).tolist(), volumes=per)


def _noise(out, clean, b, g, s, rng, applied, params, o):
    ref, _ = _ref_signal(clean, b)
    sigma = s * 0.08 * ref
    for v in range(out.shape[3]):  # one volume at a time keeps memory small
        n1 = rng.standard_normal(out.shape[:3], dtype=np.float32)
        n2 = rng.standard_normal(out.shape[:3], dtype=np.float32)
        out[..., v] = np.sqrt((clean[..., v] + sigma * n1) ** 2 + (sigma * n2) ** 2)
        applied[v, :] = True
    params.update(sigma=round(float(sigma), 6), reference_signal=round(ref, 4))


_KIND_FUNCS = {"dropout": _dropout, "motion": _motion, "venetian": _venetian, "ghosting": _ghosting,
               "spike": _spike, "gibbs": _gibbs, "eddy": _eddy, "vibration": _vibration, "noise": _noise}
