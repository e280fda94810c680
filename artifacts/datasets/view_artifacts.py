"""Seeded generator of reconstruction artifacts on real views, with per-pixel ground truth.

It turns a clean view of a scene into a degraded "novel view" that looks like
a NeRF / 3D Gaussian splatting render gone wrong in places, to evaluate
no-reference artifact maps (a metric that compares a novel view with clean
reference views of the same scene, Puzzle-Similarity style, and must say where
the view is broken).  The kinds, and the physical cause each one mimics:

``blur``
    Anisotropic Gaussian blur: under-reconstructed areas (few views, few or
    over-large Gaussians, coarse samples) lose high-frequency detail.
``floaters``
    Semi-transparent soft blobs (flat scene colours or blurred patches from
    elsewhere in the view) of several sizes: spurious density / Gaussians
    left in free space in front of the surface, often near the cameras.
``holes``
    Missing geometry: the region shows the background (the compositing
    colour, black, white) or content smeared into streaks from the hole's
    surroundings (stretched Gaussians covering unobserved space).
``ghosting``
    A shifted, partly transparent copy of the content: inconsistent poses or
    a duplicated surface at two depths shows doubled edges.
``color_bleeding``
    Chroma shifted along a direction, smeared and amplified across edges while
    luminance is kept: view-dependent colour (spherical harmonics) fitted
    wrongly, colour leaking between neighbouring primitives.
``noise``
    Luma + chroma speckle plus sparse tiny splats of scene colours: the
    high-frequency noise of under-sampled rays / many tiny spiky Gaussians.
``cloudiness``
    Low-frequency milky haze (lower contrast, desaturated, slightly soft):
    semi-transparent low density spread through space (NeRF "cloudy" artifacts).

**Regions.** Every kind acts on ``n_regions`` smooth random blobs (rotated
ellipses whose radius is warped by up to about -20/+60 % by low-frequency
noise in pixel coordinates) whose total area at severity 1 is about a
fraction of the view drawn from ``ViewDegradeConfig.area`` (less where a blob
leaves the frame; the actual fraction is ``meta["region_area"]``);
the blobs are feathered (``holes`` sharp, ``cloudiness`` very soft), so clean
and degraded parts coexist.  ``floaters`` are their own region: soft blobs
whose centres lie inside those regions.  The output is
``clean + w * (degraded - clean)`` per pixel, with ``w`` the feathered weight;
where ``w == 0`` (outside ``DegradedView.region``) pixels are copied, exactly
unchanged.

**Severity** ``s`` in [0, 1]: 0 is the identity (no random effect, empty
mask); the area grows as ``0.3 + 0.7 s`` times the drawn area (same blob
centres and noise, so the regions of one seed are nested in ``s``) and each
kind's strength (blur sigma, opacity, shift, noise sigma, haze amount) grows
with ``s``; all random numbers are drawn independently of ``s``, so for one
seed a higher severity is the same degradation, bigger and stronger.

**Ground truth.** ``gt_map`` = ``max_c |degraded - clean| / 255`` (float32 in
[0, 1], in absolute 8-bit units, not normalised per image; it is exactly
``uint8`` levels / 255).  ``mask`` = ``max_c |degraded - clean| >
mask_threshold`` with ``mask_threshold`` in 8-bit levels, default 2, i.e. a
change of more than 2/255 in any RGB channel (luminance or colour).  ``region``
= where the degradation was applied (``w > 0``); ``mask`` is inside it.
Degraded regions over flat content (a blurred white wall) can change nothing:
they are in ``region`` but not in ``mask``.

**RGBA input** (NeRF-synthetic renders such as lego) is composited onto
``ViewDegradeConfig.background`` (white by default, as NeRF-synthetic
evaluation does: ``rgb * a + bg * (1 - a)``) before degrading;
``DegradedView.clean`` holds the composited view, the reference the change
is measured against.

Everything is driven by ``numpy.random.SeedSequence(seed)``: equal arguments
give identical arrays, and :func:`write_view_set` byte-identical files.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import cv2
import numpy as np
from numpy.random import Generator

__all__ = [
    "DEFAULT_CONFIG",
    "HOLE_FILLS",
    "KINDS",
    "DegradedView",
    "ViewDegradeConfig",
    "composite",
    "degrade",
    "load_view",
    "select_kinds",
    "write_view_set",
]

KINDS = ("blur", "floaters", "holes", "ghosting", "color_bleeding", "noise", "cloudiness")
HOLE_FILLS = ("background", "black", "white", "smear")
_BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}
# feathering of the region blobs per kind, in field units (1 - d^2 + noise; ~0.5 * edge of the radius)
_EDGE = {"blur": 0.35, "floaters": 0.3, "holes": 0.06, "ghosting": 0.3, "color_bleeding": 0.3,
         "noise": 0.2, "cloudiness": 1.0}


def _r(x: float) -> float:
    return round(float(x), 4)


def select_kinds(include: Optional[Iterable[str]] = None, exclude: Iterable[str] = ()) -> tuple[str, ...]:
    """Kinds in :data:`KINDS` order: ``include`` (default all) less ``exclude``.

    For held-out evaluation, e.g. tune on ``select_kinds(exclude=["ghosting"])``
    and test on ``("ghosting",)``; pass the result as ``ViewDegradeConfig.kinds``
    or ``write_view_set(kinds=...)``.  Unknown names raise ValueError.
    """
    inc = KINDS if include is None else tuple(include)
    exc = tuple(exclude)
    bad = [k for k in (*inc, *exc) if k not in KINDS]
    if bad:
        raise ValueError(f"unknown kinds {bad}; expected names from {KINDS}")
    out = tuple(k for k in KINDS if k in inc and k not in exc)
    if not out:
        raise ValueError("no kinds left to choose from")
    return out


@dataclass(frozen=True)
class ViewDegradeConfig:
    """Parameters of :func:`degrade` (frozen; defaults suit 400-1300 px views)."""

    kinds: tuple[str, ...] = KINDS  # drawn from when degrade() gets no kind
    severity: Union[float, tuple[float, float]] = (0.2, 1.0)  # fixed value, or uniform range
    area: tuple[float, float] = (0.05, 0.25)  # region fraction of the view at severity 1
    n_regions: tuple[int, int] = (1, 3)  # inclusive range of blobs per view
    background: Union[str, tuple[int, int, int]] = "white"  # RGBA compositing colour
    hole_fills: tuple[str, ...] = HOLE_FILLS  # what `holes` show
    mask_threshold: int = 2  # mask = max channel change > this many 8-bit levels

    def __post_init__(self) -> None:
        kinds = tuple(self.kinds)
        if not kinds or [k for k in kinds if k not in KINDS] or len(set(kinds)) != len(kinds):
            raise ValueError(f"kinds must be a non-empty subset of {KINDS} without repeats, got {self.kinds}")
        sev = self.severity
        if isinstance(sev, (int, float, np.floating, np.integer)) and not isinstance(sev, bool):
            if not 0.0 <= float(sev) <= 1.0:
                raise ValueError(f"severity must be in [0, 1], got {sev}")
            sev = float(sev)
        else:
            try:
                lo, hi = (float(v) for v in sev)
            except (TypeError, ValueError):
                raise ValueError(f"severity must be a number or a (lo, hi) pair, got {sev!r}") from None
            if not 0.0 <= lo <= hi <= 1.0:
                raise ValueError(f"severity range must satisfy 0 <= lo <= hi <= 1, got {sev}")
            sev = (lo, hi)
        try:
            alo, ahi = (float(v) for v in self.area)
        except (TypeError, ValueError):
            raise ValueError(f"area must be a (lo, hi) pair, got {self.area!r}") from None
        if not 0.0 < alo <= ahi <= 0.6:
            raise ValueError(f"area must satisfy 0 < lo <= hi <= 0.6, got {self.area}")
        try:
            nlo, nhi = (int(v) for v in self.n_regions)
        except (TypeError, ValueError):
            raise ValueError(f"n_regions must be an (lo, hi) pair of ints, got {self.n_regions!r}") from None
        if not 1 <= nlo <= nhi <= 8 or (nlo, nhi) != tuple(self.n_regions):
            raise ValueError(f"n_regions must be ints with 1 <= lo <= hi <= 8, got {self.n_regions}")
        bg = self.background
        if isinstance(bg, str):
            if bg not in _BACKGROUNDS:
                raise ValueError(f"background must be one of {sorted(_BACKGROUNDS)} or an (r, g, b) triple")
        else:
            try:
                bg = tuple(int(v) for v in bg)
            except (TypeError, ValueError):
                raise ValueError(f"background must be a name or an (r, g, b) triple, got {bg!r}") from None
            if len(bg) != 3 or not all(0 <= v <= 255 for v in bg):
                raise ValueError(f"background triple must hold three ints in 0..255, got {self.background}")
        fills = tuple(self.hole_fills)
        if not fills or [f for f in fills if f not in HOLE_FILLS] or len(set(fills)) != len(fills):
            raise ValueError(f"hole_fills must be a non-empty subset of {HOLE_FILLS}, got {self.hole_fills}")
        thr = self.mask_threshold
        if isinstance(thr, bool) or not isinstance(thr, (int, np.integer)) or not 0 <= thr <= 254:
            raise ValueError(f"mask_threshold must be an int number of 8-bit levels in 0..254, got {thr!r}")
        for name, value in (("kinds", kinds), ("severity", sev), ("area", (alo, ahi)),
                            ("n_regions", (nlo, nhi)), ("background", bg), ("hole_fills", fills),
                            ("mask_threshold", int(thr))):
            object.__setattr__(self, name, value)

    @property
    def background_rgb(self) -> tuple[int, int, int]:
        bg = self.background
        return _BACKGROUNDS[bg] if isinstance(bg, str) else bg  # type: ignore[return-value]


DEFAULT_CONFIG = ViewDegradeConfig()


@dataclass
class DegradedView:
    """One degraded view with its ground truth."""

    image: np.ndarray  # H,W,3 uint8, the degraded view
    mask: np.ndarray  # H,W bool, visible change (> config.mask_threshold levels in some channel)
    gt_map: np.ndarray  # H,W float32 in [0,1], max channel |change| / 255
    kind: str
    severity: float
    meta: dict  # JSON-serialisable record of every drawn parameter
    region: np.ndarray = field(repr=False, default=None)  # H,W bool, where the degradation was applied
    clean: np.ndarray = field(repr=False, default=None)  # H,W,3 uint8, the (composited) input


# ------------------------------------------------------------------ input


def composite(rgba: np.ndarray, background: Union[str, Sequence[int]] = "white") -> np.ndarray:
    """An ``H,W,4`` uint8 RGBA image (straight alpha) over a flat background, as uint8 RGB."""
    bg = np.asarray(_BACKGROUNDS[background] if isinstance(background, str) else background, np.float32)
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    out = rgba[..., :3].astype(np.float32) * a + bg * (1.0 - a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _as_rgb(image: np.ndarray, cfg: ViewDegradeConfig) -> tuple[np.ndarray, bool]:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"image must be a uint8 numpy array, got {getattr(image, 'dtype', type(image))}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"image must be H,W / H,W,3 (RGB) / H,W,4 (RGBA), got shape {image.shape}")
    if min(image.shape[:2]) < 8:
        raise ValueError(f"image must be at least 8x8 pixels, got {image.shape[:2]}")
    if image.shape[2] == 4:
        return composite(image, cfg.background_rgb), True
    return np.ascontiguousarray(image), False


# ---------------------------------------------------------------- regions


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _draw_blobs(rng: Generator, hw: tuple[int, int], n: int, area: float) -> list[dict]:
    """Region blobs at severity 1 (``area`` = their total fraction of the view)."""
    h, w = hw
    share = rng.uniform(0.5, 1.5, n)
    share /= share.sum()
    blobs = []
    for i in range(n):
        r = 0.94 * math.sqrt(area * share[i] * h * w / math.pi)  # 0.94: the warp enlarges on average
        ar = math.exp(rng.uniform(-0.6, 0.6))
        blobs.append({"centre": [rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w],
                      "radii": [r * math.sqrt(ar), r / math.sqrt(ar)], "angle": rng.uniform(0, math.pi),
                      "noise_amp": rng.uniform(0.3, 0.7),
                      "noise": rng.standard_normal((int(rng.integers(3, 7)),) * 2).astype(np.float32)})
    return blobs


_MAX_WARP = 0.6  # the noise changes the squared radius by a factor within 1 / (1 -+ this)
_REACH = 1.0 / math.sqrt(1.0 - _MAX_WARP) + 0.05  # farthest blob boundary, in radii


def _ellipse_field(hw: tuple[int, int], centre, radii, angle, amp, noise,
                   scale: float) -> tuple[tuple[slice, slice], np.ndarray]:
    """``1 - d^2 (1 - warp)`` over the bounding box of the blob at ``scale`` (radii * scale).

    ``d`` is the elliptical distance, ``warp = clip(amp * noise)`` a smooth
    random deformation of the boundary (the centre is always inside).  The
    noise is laid in pixel coordinates over the blob's extent at scale 1, so
    the field grows pointwise with ``scale``: bigger blobs contain smaller ones.
    """
    h, w = hw
    cy, cx = centre
    ext1 = max(radii) * _REACH
    ext = ext1 * scale
    y0, y1 = max(0, int(cy - ext)), min(h, int(math.ceil(cy + ext)) + 1)
    x0, x1 = max(0, int(cx - ext)), min(w, int(math.ceil(cx + ext)) + 1)
    if y1 <= y0 or x1 <= x0:
        return (slice(0, 0), slice(0, 0)), np.zeros((0, 0), np.float32)
    yy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
    xx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
    c, s = math.cos(angle), math.sin(angle)
    u = (xx * c + yy * s) / np.float32(radii[1] * scale)
    v = (-xx * s + yy * c) / np.float32(radii[0] * scale)
    # unit-variance noise grid spanning [cy - ext1, cy + ext1] x [cx - ext1, cx + ext1] (independent of scale)
    grid = (noise - noise.mean()) / max(float(noise.std()), 1e-6)
    side = max(2, int(math.ceil(2 * ext1)) + 1)
    big = cv2.resize(grid.astype(np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
    iy = np.clip(np.rint(yy[:, 0] + ext1).astype(int), 0, side - 1)
    ix = np.clip(np.rint(xx[0] + ext1).astype(int), 0, side - 1)
    warp = np.clip(np.float32(amp) * big[np.ix_(iy, ix)], -_MAX_WARP, _MAX_WARP)
    return (slice(y0, y1), slice(x0, x1)), (1.0 - (u * u + v * v) * (1.0 - warp)).astype(np.float32)


def _region_weight(hw: tuple[int, int], blobs: list[dict], scale: float, edge: float) -> np.ndarray:
    weight = np.zeros(hw, np.float32)
    for b in blobs:
        sl, f = _ellipse_field(hw, b["centre"], b["radii"], b["angle"], b["noise_amp"], b["noise"], scale)
        if f.size:
            np.maximum(weight[sl], _smoothstep(f / np.float32(edge)), out=weight[sl])
    return weight


# ------------------------------------------------------------------ filters


def _gauss_kernel(sig_major: float, sig_minor: float, theta: float) -> np.ndarray:
    rad = max(1, int(math.ceil(3.0 * sig_major)))
    yy, xx = np.mgrid[-rad : rad + 1, -rad : rad + 1].astype(np.float32)
    c, s = math.cos(theta), math.sin(theta)
    u, v = xx * c + yy * s, -xx * s + yy * c
    k = np.exp(-0.5 * ((u / sig_major) ** 2 + (v / max(sig_minor, 0.3)) ** 2)).astype(np.float32)
    return k / k.sum()


def _aniso_blur(img: np.ndarray, sig_major: float, sig_minor: float, theta: float) -> np.ndarray:
    if sig_major < 0.3:
        return img.copy()
    k = _gauss_kernel(sig_major, min(sig_minor, sig_major), theta)
    return cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT)


def _line_kernel(length: float, theta: float) -> np.ndarray:
    rad = max(1, int(math.ceil(length / 2)))
    k = np.zeros((2 * rad + 1, 2 * rad + 1), np.float32)
    dx, dy = math.cos(theta) * length / 2, math.sin(theta) * length / 2
    p0 = (int(round(rad - dx)), int(round(rad - dy)))
    p1 = (int(round(rad + dx)), int(round(rad + dy)))
    cv2.line(k, p0, p1, 1.0, 1, cv2.LINE_AA)
    return k / k.sum()


def _shift(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def _gblur(img: np.ndarray, sigma: float) -> np.ndarray:
    return img.copy() if sigma < 0.3 else cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def _luma(img: np.ndarray) -> np.ndarray:
    return img @ np.float32([0.299, 0.587, 0.114])


# -------------------------------------------------------------------- kinds
# Each takes (rng, img float32 HxWx3 in [0,1], region weight, severity, context) and returns the
# fully degraded image D, the blend weight w (output = img + w * (D - img)) and the drawn parameters.
# The random draws never depend on the severity.


@dataclass
class _Ctx:
    side: int  # shorter image side
    bg: Optional[np.ndarray]  # float32 RGB, the "background" colour (holes only)
    blobs: list
    area: float  # region fraction at severity 1
    scale: float  # blob radius scale at this severity
    hole_fills: tuple


def _k_blur(rng, img, weight, s, ctx):
    sig = rng.uniform(0.008, 0.02) * ctx.side
    ratio, theta = rng.uniform(1.0, 3.0), rng.uniform(0, math.pi)
    d = _aniso_blur(img, sig * s, sig * s / ratio, theta)
    return d, weight, {"sigma_major": sig * s, "sigma_minor": sig * s / ratio, "theta": theta}


def _k_floaters(rng, img, weight, s, ctx):
    h, w = img.shape[:2]
    n = int(rng.integers(4, 13))
    size = np.exp(rng.uniform(0.0, math.log(8.0), n))
    aspect = np.exp(rng.uniform(-0.9, 0.9, n))
    angle = rng.uniform(0, math.pi, n)
    which = rng.integers(0, len(ctx.blobs), n)
    rr, phi = np.sqrt(rng.uniform(0, 1, n)) * 0.8, rng.uniform(0, 2 * math.pi, n)
    src = rng.uniform(0.05, 0.95, (n, 2)) * (h, w)
    textured = rng.uniform(0, 1, n) < 0.5
    gain = rng.uniform(0.8, 1.2, n)
    opacity = rng.uniform(0.6, 0.95, n)
    amp = rng.uniform(0.1, 0.35, n)
    noises = rng.standard_normal((n, 4, 4)).astype(np.float32)
    edges = rng.uniform(0.5, 1.0, n)
    blurred = _gblur(img, 0.01 * ctx.side + 0.5)
    # radii at severity 1: total floater area = ctx.area of the view, split by size^2; the field
    # scales them by ctx.scale, so the area is ctx.area * (0.3 + 0.7 s) as for the other kinds
    r_unit = size * math.sqrt(ctx.area * h * w / math.pi / float((size**2).sum()))
    out, total = img.copy(), np.zeros((h, w), np.float32)
    op_scale = 0.45 + 0.55 * s
    params = []
    for i in range(n):
        b = ctx.blobs[int(which[i])]
        ca, sa = math.cos(b["angle"]), math.sin(b["angle"])
        ox, oy = rr[i] * math.cos(phi[i]) * b["radii"][1], rr[i] * math.sin(phi[i]) * b["radii"][0]
        cy, cx = b["centre"][0] + ox * sa + oy * ca, b["centre"][1] + ox * ca - oy * sa
        radii = (r_unit[i] * math.sqrt(aspect[i]), r_unit[i] / math.sqrt(aspect[i]))
        sl, f = _ellipse_field((h, w), (cy, cx), radii, angle[i], amp[i], noises[i], ctx.scale)
        if not f.size:
            continue
        a = _smoothstep(f / np.float32(edges[i])) * np.float32(opacity[i] * op_scale)
        sy, sx = int(np.clip(src[i, 0], 0, h - 1)), int(np.clip(src[i, 1], 0, w - 1))
        if textured[i]:  # a blurred piece of the scene from elsewhere, misplaced
            ys = np.clip(np.arange(sl[0].start, sl[0].stop) - int(cy) + sy, 0, h - 1)
            xs = np.clip(np.arange(sl[1].start, sl[1].stop) - int(cx) + sx, 0, w - 1)
            colour = blurred[np.ix_(ys, xs)] * np.float32(gain[i])
        else:  # a flat scene colour
            colour = np.broadcast_to(blurred[sy, sx] * np.float32(gain[i]), f.shape + (3,))
        a3 = a[..., None]
        out[sl] = out[sl] * (1.0 - a3) + np.clip(colour, 0, 1) * a3
        np.maximum(total[sl], a, out=total[sl])
        params.append({"centre": [_r(cy), _r(cx)], "radii": [_r(radii[0] * ctx.scale), _r(radii[1] * ctx.scale)],
                       "angle": _r(angle[i]), "opacity": _r(opacity[i] * op_scale),
                       "source": [sy, sx], "textured": bool(textured[i])})
    return out, (total > 0).astype(np.float32), {"floaters": params}


def _k_holes(rng, img, weight, s, ctx):
    fill = ctx.hole_fills[int(rng.integers(len(ctx.hole_fills)))]
    length = rng.uniform(0.08, 0.25) * ctx.side
    theta = rng.uniform(0, math.pi)
    opacity = rng.uniform(0.85, 1.0) * (0.7 + 0.3 * s)
    if fill == "smear":  # streaks from the hole's surroundings (normalised directional convolution)
        k = _line_kernel(max(3.0, length * (0.5 + 0.5 * s)), theta)
        keep = (1.0 - weight)[..., None]
        num = cv2.filter2D(img * keep, -1, k, borderType=cv2.BORDER_REFLECT)
        den = cv2.filter2D(keep, -1, k, borderType=cv2.BORDER_REFLECT)
        den = den[..., None] if den.ndim == 2 else den
        plain = cv2.filter2D(img, -1, k, borderType=cv2.BORDER_REFLECT)
        d = (num + 0.02 * plain) / (den + 0.02)
    else:
        colour = {"background": ctx.bg, "black": np.zeros(3, np.float32), "white": np.ones(3, np.float32)}[fill]
        d = np.broadcast_to(colour.astype(np.float32), img.shape)
    return d, weight * np.float32(opacity), {"fill": fill, "opacity": opacity,
                                              "smear_length": length * (0.5 + 0.5 * s), "theta": theta,
                                              "colour": [_r(c) for c in ctx.bg] if fill == "background" else None}


def _k_ghosting(rng, img, weight, s, ctx):
    n = int(rng.integers(1, 3))
    dist = rng.uniform(0.02, 0.06, 2) * ctx.side * s
    theta = rng.uniform(0, 2 * math.pi, 2)
    alpha = rng.uniform(0.35, 0.55, 2) * (0.5 + 0.5 * s) / np.array([1.0, 1.6])
    soft = rng.uniform(0.0, 1.5, 2)
    d = img * np.float32(1.0 - alpha[:n].sum())
    ghosts = []
    for i in range(n):
        dy, dx = dist[i] * math.sin(theta[i]), dist[i] * math.cos(theta[i])
        d += np.float32(alpha[i]) * _gblur(_shift(img, dy, dx), soft[i])
        ghosts.append({"shift": [_r(dy), _r(dx)], "alpha": _r(alpha[i]), "blur": _r(soft[i])})
    return d, weight, {"ghosts": ghosts}


def _k_color_bleeding(rng, img, weight, s, ctx):
    dist = rng.uniform(0.006, 0.02) * ctx.side * s
    theta = rng.uniform(0, 2 * math.pi)
    spread = rng.uniform(0.8, 1.5)
    gain = 1.0 + rng.uniform(0.2, 0.6) * s
    ycc = cv2.cvtColor(img, cv2.COLOR_RGB2YCrCb)
    chroma = np.ascontiguousarray(ycc[..., 1:])
    chroma = _shift(chroma, dist * math.sin(theta), dist * math.cos(theta))
    chroma = _aniso_blur(chroma, max(dist * spread, 0.3), 0.5 + 0.1 * dist, theta)
    ycc[..., 1:] = 0.5 + np.float32(gain) * (chroma - 0.5)
    d = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)
    return d, weight, {"shift": _r(dist), "theta": theta, "smear_sigma": dist * spread, "chroma_gain": gain}


def _k_noise(rng, img, weight, s, ctx):
    h, w = img.shape[:2]
    sigma = rng.uniform(0.04, 0.10) * s
    chroma = rng.uniform(0.3, 0.8)
    nl = rng.standard_normal((h, w, 1), dtype=np.float32)
    nc = rng.standard_normal((h, w, 3), dtype=np.float32)
    density = rng.uniform(0.003, 0.012)
    n_max = max(1, int(density * h * w))
    pos = rng.integers(0, h * w, n_max)
    src = rng.integers(0, h * w, n_max)
    alphas = rng.uniform(0.5, 1.0, n_max).astype(np.float32)
    spl_sigma = rng.uniform(0.6, 1.2)
    d = img + np.float32(sigma) * (nl * np.float32(1 - chroma) + nc * np.float32(chroma))
    used = int(round(n_max * s))
    a = np.zeros(h * w, np.float32)
    c = np.zeros((h * w, 3), np.float32)
    a[pos[:used]] = alphas[:used]
    c[pos[:used]] = img.reshape(-1, 3)[src[:used]] * alphas[:used, None]
    peak = 1.0 / (2 * math.pi * spl_sigma**2)
    a = np.clip(_gblur(a.reshape(h, w), spl_sigma) / np.float32(peak), 0, 1)
    c = _gblur(c.reshape(h, w, 3), spl_sigma) / np.float32(peak)
    d = d * (1.0 - a[..., None]) + np.clip(c, 0, 1)
    return d, weight, {"sigma": sigma, "chroma_fraction": chroma, "splats": used, "splat_sigma": spl_sigma}


def _k_cloudiness(rng, img, weight, s, ctx):
    h, w = img.shape[:2]
    amount = rng.uniform(0.35, 0.7) * s
    desat = rng.uniform(0.3, 0.7) * s
    milk = rng.uniform(0.75, 0.95)
    tint = rng.uniform(0.3, 0.6)
    grid = rng.standard_normal((5, 5)).astype(np.float32)
    soft = rng.uniform(0.002, 0.006) * ctx.side * s
    low = cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
    low = 0.6 + 0.4 * (low - low.min()) / max(float(low.max() - low.min()), 1e-6)
    haze = (tint * img.reshape(-1, 3).mean(0) + (1 - tint) * milk).astype(np.float32)
    d = _gblur(img, soft)
    y = _luma(d)[..., None]
    d = d * np.float32(1 - desat) + y * np.float32(desat)
    hh = (np.float32(amount) * low)[..., None]
    d = d * (1.0 - hh) + haze * hh
    return d, weight, {"amount": amount, "desaturation": desat, "haze": [_r(v) for v in haze],
                       "blur_sigma": soft}


_KIND_FUNCS = {"blur": _k_blur, "floaters": _k_floaters, "holes": _k_holes, "ghosting": _k_ghosting,
               "color_bleeding": _k_color_bleeding, "noise": _k_noise, "cloudiness": _k_cloudiness}


# --------------------------------------------------------------------- API


def _scene_background(clean: np.ndarray, composited: bool, cfg: ViewDegradeConfig) -> np.ndarray:
    """The compositing colour for RGBA input, else the median colour of the view's border."""
    if composited:
        return np.asarray(cfg.background_rgb, np.float32) / 255.0
    b = max(1, min(clean.shape[:2]) // 50)
    border = np.concatenate([clean[:b].reshape(-1, 3), clean[-b:].reshape(-1, 3),
                             clean[:, :b].reshape(-1, 3), clean[:, -b:].reshape(-1, 3)])
    return np.median(border, axis=0).astype(np.float32) / 255.0


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def degrade(image: np.ndarray, seed: int, kind: Optional[str] = None, severity: Optional[float] = None,
            config: Optional[ViewDegradeConfig] = None) -> DegradedView:
    """Degrade one view (``H,W,3`` uint8; ``H,W,4`` RGBA is composited first; grey is repeated).

    ``kind`` defaults to a seeded choice among ``config.kinds`` (an explicit
    kind may be any of :data:`KINDS`); ``severity`` defaults to
    ``config.severity`` (fixed, or drawn uniformly from the range).  For one
    seed the regions and parameters are the same whatever ``kind``/``severity``
    are given, so a severity series of one seed is nested.
    """
    cfg = config or DEFAULT_CONFIG
    seed = _check_seed(seed)
    clean, composited = _as_rgb(image, cfg)
    h, w = clean.shape[:2]
    r_choice, r_regions, r_kind = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    u_kind, u_sev = r_choice.uniform(0, 1, 2)
    if kind is None:
        kind = cfg.kinds[min(int(u_kind * len(cfg.kinds)), len(cfg.kinds) - 1)]
    elif kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    if severity is None:
        sev = cfg.severity if isinstance(cfg.severity, float) else cfg.severity[0] + u_sev * (
            cfg.severity[1] - cfg.severity[0])
    else:
        if isinstance(severity, bool) or not isinstance(severity, (int, float, np.integer, np.floating)) \
                or not 0.0 <= float(severity) <= 1.0:
            raise ValueError(f"severity must be a number in [0, 1], got {severity!r}")
        sev = float(severity)
    sev = float(sev)
    meta: dict[str, Any] = {"seed": seed, "kind": kind, "severity": _r(sev), "size": [h, w],
                            "composited": composited,
                            "background": list(cfg.background_rgb) if composited else None,
                            "mask_threshold": cfg.mask_threshold}
    if sev == 0.0:
        meta.update({"regions": [], "params": {}, "region_area": 0.0, "mask_area": 0.0, "mean_change": 0.0})
        zeros = np.zeros((h, w), bool)
        return DegradedView(clean.copy(), zeros, np.zeros((h, w), np.float32), kind, 0.0, meta,
                            zeros.copy(), clean)
    n = int(r_regions.integers(cfg.n_regions[0], cfg.n_regions[1] + 1))
    area = float(r_regions.uniform(*cfg.area))
    blobs = _draw_blobs(r_regions, (h, w), n, area)
    area_factor = 0.3 + 0.7 * sev
    scale = math.sqrt(area_factor)
    weight = _region_weight((h, w), blobs, scale, _EDGE[kind])
    img = clean.astype(np.float32) / np.float32(255.0)
    bg = _scene_background(clean, composited, cfg) if kind == "holes" else None
    ctx = _Ctx(min(h, w), bg, blobs, area, scale, cfg.hole_fills)
    d, wk, params = _KIND_FUNCS[kind](r_kind, img, weight, sev, ctx)
    region = wk > 0
    result, gt_map = clean.copy(), np.zeros((h, w), np.float32)
    delta = np.zeros((h, w), np.int16)
    rows, cols = np.flatnonzero(region.any(1)), np.flatnonzero(region.any(0))
    if rows.size:  # blend inside the bounding box of the region only; outside it is an exact copy
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        ib, wb = img[box], wk[box][..., None]
        out = (ib + wb * (np.asarray(d[box], np.float32) - ib)) * np.float32(255.0)
        blend = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        np.copyto(blend, clean[box], where=~region[box][..., None])
        result[box] = blend
        delta[box] = np.abs(blend.astype(np.int16) - clean[box].astype(np.int16)).max(axis=2)
        gt_map[box] = delta[box].astype(np.float32) / np.float32(255.0)
    mask = delta > cfg.mask_threshold
    meta.update({
        "area": _r(area), "area_factor": _r(area_factor),
        "regions": [{"centre": [_r(b["centre"][0]), _r(b["centre"][1])],
                     "radii": [_r(b["radii"][0] * scale), _r(b["radii"][1] * scale)],
                     "angle": _r(b["angle"]), "noise_amp": _r(b["noise_amp"]),
                     "noise_grid": int(b["noise"].shape[0])} for b in blobs],
        "edge": _EDGE[kind],
        "params": {k: (_r(v) if isinstance(v, (float, np.floating)) else v) for k, v in params.items()},
        "region_area": _r(region.mean()), "mask_area": _r(mask.mean()), "mean_change": _r(gt_map.mean()),
    })
    return DegradedView(result, mask, gt_map, kind, sev, meta, region, clean)


# ------------------------------------------------------------------- writer


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name)


def _sev_tag(sev: float) -> str:
    return f"s{int(round(sev * 100)):03d}"


def load_view(path: Path, cfg: ViewDegradeConfig, max_side: Optional[int]) -> tuple[np.ndarray, bool]:
    """A view file as uint8 RGB (RGBA composited on ``cfg``'s background, 16-bit rounded),
    downscaled (area) to ``max_side``; and whether it was composited."""
    from artifacts.io import load_image

    data = load_image(path)
    px = data.pixels
    if px.dtype == np.uint16:
        px = np.rint(px.astype(np.float32) / 257.0).astype(np.uint8)
    composited = data.alpha is not None
    if composited:
        alpha = data.alpha
        if alpha.dtype == np.uint16:
            alpha = np.rint(alpha.astype(np.float32) / 257.0).astype(np.uint8)
        px = composite(np.dstack([px, alpha]), cfg.background_rgb)
    if max_side is not None and max(px.shape[:2]) > max_side:
        f = max_side / max(px.shape[:2])
        size = (max(8, int(round(px.shape[1] * f))), max(8, int(round(px.shape[0] * f))))
        px = cv2.resize(px, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(px), composited


def _view_seed(seed: int, view: str, kind: str) -> int:
    """Seed of one (view, kind): independent of the list order and of the other kinds chosen."""
    ss = np.random.SeedSequence([seed, zlib.crc32(view.encode()), KINDS.index(kind)])
    return int(ss.generate_state(1, np.uint32)[0])


def write_view_set(views: Sequence[Union[str, Path]], out_dir: Union[str, Path], seed: int = 0,
                   severities: Sequence[float] = (0.3, 0.6, 1.0), kinds: Optional[Iterable[str]] = None,
                   max_side: Optional[int] = None, config: Optional[ViewDegradeConfig] = None) -> list[dict]:
    """Degrade every view with every kind at every severity and write the set.

    Layout under ``out_dir``: ``clean/<view>.png`` (the composited, resized
    reference each degraded view is measured against),
    ``degraded/<view>_<kind>_s<sev>.png`` (``sev`` = severity x 100, three
    digits, e.g. ``s060``), ``masks/<same>.png`` (0/255), ``maps/<same>.png``
    (8-bit ``gt_map * 255``, exact) and ``manifest.json``: a list of
    ``{name, view, clean, kind, severity, seed, image, mask, map, meta}``
    with paths relative to ``out_dir`` (``view`` as given).  ``kinds``
    defaults to ``config.kinds`` (see :func:`select_kinds` to hold some
    out); views larger than ``max_side`` are downscaled (area interpolation)
    after RGBA compositing.  The seed of each (view, kind) derives from
    ``seed``, the view's file stem and the kind, and is shared by its
    severities (nested regions).  Equal arguments give byte-identical files.
    """
    from artifacts.io import save_image

    cfg = config or DEFAULT_CONFIG
    seed = _check_seed(seed)
    chosen = cfg.kinds if kinds is None else select_kinds(kinds)
    sevs = [float(s) for s in severities]
    if not sevs or any(not 0.0 <= s <= 1.0 for s in sevs):
        raise ValueError(f"severities must be a non-empty list of numbers in [0, 1], got {severities}")
    if len({_sev_tag(s) for s in sevs}) != len(sevs):
        raise ValueError(f"severities must differ at two decimals, got {severities}")
    if max_side is not None and int(max_side) < 8:
        raise ValueError(f"max_side must be >= 8, got {max_side}")
    paths = [Path(v) for v in views]
    stems = [_safe(p.stem) for p in paths]
    if len(set(stems)) != len(stems):
        raise ValueError("views must have distinct file names (stems)")
    out = Path(out_dir)
    for sub in ("clean", "degraded", "masks", "maps"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    manifest: list[dict] = []
    for view, path, stem in zip(views, paths, stems):
        clean, composited = load_view(path, cfg, max_side)
        save_image(out / "clean" / f"{stem}.png", clean)
        for kind in chosen:
            vseed = _view_seed(seed, stem, kind)
            for sev in sevs:
                dv = degrade(clean, vseed, kind, sev, cfg)
                name = f"{stem}_{kind}_{_sev_tag(sev)}"
                save_image(out / "degraded" / f"{name}.png", dv.image)
                save_image(out / "masks" / f"{name}.png", dv.mask)
                save_image(out / "maps" / f"{name}.png", np.rint(dv.gt_map * 255).astype(np.uint8))
                meta = dict(dv.meta, composited=composited,
                            background=list(cfg.background_rgb) if composited else None)
                manifest.append({"name": name, "view": str(view), "clean": f"clean/{stem}.png",
                                 "kind": kind, "severity": _r(sev), "seed": vseed,
                                 "image": f"degraded/{name}.png", "mask": f"masks/{name}.png",
                                 "map": f"maps/{name}.png", "meta": meta})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest
