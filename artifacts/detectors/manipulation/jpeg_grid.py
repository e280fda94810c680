"""``manipulation/jpeg-grid``: block-artifact grid alignment of JPEG files.

JPEG files only, analysed on the stored 8x8 grid of the last compression (applicability, EXIF
orientation and greyscale handling: :mod:`artifacts.detectors.manipulation.jpeg_blocks`).

Method after Li, Yuan & Yu, "Passive detection of doctored JPEG image via block artifact grid
extraction", Signal Processing 89(9), 2009 (BAG), as a local grid-alignment estimate.

1. Blocking shows as larger luminance jumps across block borders. For every column boundary
   ``x|x+1`` the jump ``|Y(x+1) - Y(x)|`` (and the same for rows), clipped to ``clip`` grey
   levels so that strong edges do not vote, is summed per 8x8 cell of the stored grid by
   phase ``x mod 8``: 8 horizontal and 8 vertical phase sums (with sums of squares) per cell.
2. Whole image: the phase whose mean jump stands out most (z-score against the mean over the
   8 phases) in each direction is the global grid, one of the 64 offsets (``(7, 7)`` when
   the last or an aligned earlier compression dominates); its z-score ``Z`` measures how
   visible the grid is.
3. Windows of ``s`` px, stride one cell, with ``s`` the smallest size from ``window`` up to
   ``max_window`` at which the global grid would reach ``window_z`` (``Z s / sqrt(h w)``); a
   fainter grid is ``not_applicable``. Per window and direction, the z-scores of the 8
   phases give: the strongest competing phase minus its image median (another grid: content
   from another JPEG pasted at a shift) plus, one-sided, how much weaker than its image
   median the global phase is (missing grid: uncompressed, resampled or synthesised content).
   Summed over both directions, averaged over the windows covering each cell, bilinearly
   upsampled. Image statistic: 99th percentile of the cell map.

Blocking is subtle after high-quality compressions and hidden by texture, and flat regions
show the last compression's grid more clearly than textured ones (hence the one-sided
term); the contrast needs an earlier compression at a clearly lower quality than the last
one. The image-level score is weak (see the model card).

Raw map and statistic are mapped to ``[0, 1]`` by Platt curves fitted on seeded generator data
with JPEG-compressed photos (``artifacts train manipulation --model jpeg-grid``, generator settings
in :data:`~artifacts.detectors.manipulation.jpeg_blocks.JPEG_CALIBRATION_GENERATOR`). Parameters
were chosen on generator seeds 50000-50119 and 60000-60199 (calibration-split photos, disjoint
from the calibration seeds), never on real evaluation sets. Memory: the pixels are read in
horizontal bands of ``band`` rows; kept for the whole image are the per-cell phase sums (48 float32
per 8x8 cell, 3 bytes per pixel), plus the float32 output map.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from artifacts.detectors.calibrated import CalibratedDetector, Raw
from artifacts.detectors.manipulation.jpeg_blocks import JPEG_CALIBRATION_GENERATOR, finish_map, stored_grid
from artifacts.detectors.manipulation.pixels import luminance
from artifacts.registry import register_model
from artifacts.types import Detection
from artifacts.weights import WeightSpec


@dataclass
class JpegGridConfig:
    window: int = 32  # smallest window side (px), a multiple of 8
    max_window: int = 128  # largest window side (px); a fainter grid is not applicable
    window_z: float = 3.0  # z-score the global grid should reach in one window
    clip: float = 8.0  # boundary jumps are clipped to this many grey levels
    band: int = field(default=1024, metadata={"output": False})  # rows (px) per pass: memory bound
    threshold: float | None = None  # operating threshold (default: the weights' threshold, 0.5)

    def __post_init__(self) -> None:
        if self.window < 16 or self.max_window < self.window or self.window_z <= 0 or self.clip <= 0:
            raise ValueError("jpeg-grid: window >= 16, max_window >= window, window_z > 0 and clip > 0 are required")
        if self.band < 8:
            raise ValueError("jpeg-grid: band >= 8 is required")


GRID_CALIBRATION = WeightSpec(
    tag="calib-v1",
    file="jpeg_grid_calib-v1.json",
    sha256="5243f826f8a071fdbc9d5a0c2d52b9ad9e331d4198d9535f96d2ecc9f8feba43",
    license="Apache-2.0",
    source="fitted by this package on seeded synthetic manipulations of JPEG-compressed scikit-image photos",
    train_command="artifacts train manipulation --model jpeg-grid -o DIR",
    input_spec={"format": "JPEG file", "color": "RGB or greyscale", "min_side": 64, "resize": "never"},
    output="heatmap: P(pixel's 8x8 blocking grid is shifted or missing); score: P(image manipulated)",
    threshold=0.5,
    package="artifacts.detectors.manipulation.weights",
)


def boundary_jumps(y: np.ndarray, clip: float) -> tuple[np.ndarray, np.ndarray]:
    """Absolute jump across every column boundary ``x|x+1``, clipped to ``clip`` grey levels (strong
    edges must not outvote the grid), returned at column ``x`` (same shape as ``y``) with a mask
    of the boundaries that exist (all but the last column)."""
    e = np.zeros(y.shape, np.float32)
    valid = np.zeros(y.shape, bool)
    e[:, :-1] = np.minimum(np.abs(np.diff(y, axis=1)), clip)
    valid[:, :-1] = True
    return e, valid


def cell_phase_sums(e: np.ndarray, valid: np.ndarray, axis: int):
    """Per 8x8 cell and phase (``x mod 8`` for ``axis=1``, ``y mod 8`` for ``axis=0``): sums
    of ``e``, of ``e**2`` and counts, each (hc, wc, 8); ``e`` spans whole cells."""
    hc, wc = e.shape[0] // 8, e.shape[1] // 8
    out = []
    for v in (e * valid, e * e * valid, valid.astype(np.float32)):
        cells = v[: 8 * hc, : 8 * wc].reshape(hc, 8, wc, 8)
        out.append(cells.sum(1) if axis == 1 else cells.sum(3).transpose(0, 2, 1))
    return out


def grid_cell_sums(pixels: np.ndarray, grey: bool, clip: float, band: int):
    """Horizontal and vertical phase sums (sum, sum of squares, count) of the whole image,
    computed in bands of ``band`` rows; exactly equal to a single pass."""
    h, w = pixels.shape[:2]
    hc, wc = h // 8, w // 8
    sums = {ax: [np.zeros((hc, wc, 8), np.float32) for _ in range(3)] for ax in (0, 1)}
    for y0 in range(0, 8 * hc, band):
        y1 = min(y0 + band, 8 * hc)
        e, valid = boundary_jumps(luminance(pixels[y0:y1], grey), clip)
        for acc, part in zip(sums[1], cell_phase_sums(e[:, : 8 * wc], valid[:, : 8 * wc], 1)):
            acc[y0 // 8 : y1 // 8] = part
        a, b = y0, min(y1 + 1, h)  # boundary rows y0..y1-1 need rows y..y+1
        e, valid = boundary_jumps(luminance(pixels[a:b], grey).T, clip)
        e, valid = e.T[y0 - a : y1 - a, : 8 * wc], valid.T[y0 - a : y1 - a, : 8 * wc]
        for acc, part in zip(sums[0], cell_phase_sums(e, valid, 0)):
            acc[y0 // 8 : y1 // 8] = part
    return sums


def phase_z(s: np.ndarray, s2: np.ndarray, n: np.ndarray) -> np.ndarray:
    """z-score of each phase's mean jump against the mean over all phases (last axis)."""
    total = n.sum(-1, keepdims=True).clip(min=1)
    mu = s.sum(-1, keepdims=True) / total
    var = np.maximum(s2.sum(-1, keepdims=True) / total - mu**2, 1e-4)
    return (s / n.clip(min=1) - mu) / np.sqrt(var / n.clip(min=1))


def window_sum(grid: np.ndarray, k: int) -> np.ndarray:
    """Sums over every ``k x k`` block of cells, stride 1: (hc, wc, ...) -> (hc-k+1, wc-k+1, ...)."""
    c = np.cumsum(np.cumsum(grid, 0, dtype=np.float64), 1)
    c = np.pad(c, ((1, 0), (1, 0)) + ((0, 0),) * (grid.ndim - 2))
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def spread(values: np.ndarray, k: int) -> np.ndarray:
    """Average, for every cell, of the window values covering it (inverse of window_sum)."""
    padded = np.pad(values, k - 1)
    ones = np.pad(np.ones_like(values), k - 1)
    return window_sum(padded, k) / window_sum(ones, k)


@register_model(
    "manipulation",
    "jpeg-grid",
    config=JpegGridConfig,
    weights=(GRID_CALIBRATION,),
    description="training-free JPEG block-grid (BAG) alignment inconsistency (Li, Yuan & Yu 2009)",
)
class JpegGridDetector(CalibratedDetector):
    """Local 8x8 blocking-grid alignment vs the image's dominant grid; JPEG files only."""

    calibration_kinds = ("splice", "splice_blend", "copymove", "removal")
    calibration_encoding = "jpeg"
    calibration_generator = JPEG_CALIBRATION_GENERATOR

    def raw(self, image) -> Raw | Detection:
        cfg = self.config
        got = stored_grid(image, "jpeg-grid")
        if isinstance(got, Detection):
            return got
        pixels, orientation, _, grey = got
        h, w = pixels.shape[:2]
        hc, wc = h // 8, w // 8
        kmin = max(2, cfg.window // 8)
        if hc < kmin or wc < kmin:
            return Detection.not_applicable(f"image too small ({w}x{h}): jpeg-grid needs {8 * kmin} px a side")
        rows = max(8, cfg.band - cfg.band % 8)
        sums = grid_cell_sums(pixels, grey, cfg.clip, rows)
        z_img = {ax: phase_z(*(part.sum((0, 1), dtype=np.float64) for part in sums[ax])) for ax in (0, 1)}
        pv, ph = int(np.argmax(z_img[0])), int(np.argmax(z_img[1]))
        grid_z = float(min(z_img[0][pv], z_img[1][ph]))
        # a window of s px sees the grid with z ~ grid_z * s / sqrt(h w): the smallest window
        # (in cells) where that reaches window_z, within [window, max_window]
        need = cfg.window_z * np.sqrt(8.0 * hc * 8.0 * wc) / max(grid_z, 1e-6) / 8.0
        k = max(kmin, int(np.ceil(need)))
        if k > min(cfg.max_window // 8, hc, wc):
            return Detection.not_applicable(
                f"JPEG blocking grid too faint (whole-image z = {grid_z:.1f}): windows of {8 * k} px would be "
                f"needed to see it, more than {min(cfg.max_window, 8 * hc, 8 * wc)} px")
        r = 0.0
        for ax, phase in ((0, pv), (1, ph)):
            z = phase_z(*(window_sum(part, k) for part in sums[ax]))
            others = np.delete(z, phase, axis=-1).max(-1)  # strongest competing grid phase
            aligned = z[..., phase]
            # a competing grid stronger than in the image's typical window, plus the global
            # grid weaker than typical (one-sided: smooth areas show a stronger grid, no alarm)
            r = r + (others - np.median(others)) + np.maximum(0.0, np.median(aligned) - aligned)
        cell_map = spread(r, k)
        full = finish_map(cell_map, 8, (h, w), orientation, smooth=True)
        return Raw(
            map=full,
            stat=float(np.quantile(cell_map, 0.99)),
            diagnostics={"grid_phase": [pv, ph], "grid_z": round(grid_z, 2), "window_px": 8 * k},
            preprocessing={"resize": None, "pad": None, "band_px": rows, "luminance": "BT.601",
                           "grid": "stored", "orientation_undone": orientation},
        )
