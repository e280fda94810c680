"""JPEG-domain detectors: double-quantisation (``jpeg-dq``) and block-grid (``jpeg-grid``) inconsistency.

Both read only JPEG files (``meta["format"] == "JPEG"`` with the quantisation tables that
:func:`artifacts.io.load_image` records) and analyse the luminance on the *stored* 8x8 grid of
the last compression: an image read with its EXIF orientation applied is turned back to the
stored grid first and the map is turned again at the end. Anything else (a PNG copy of a JPEG,
as CASIA ships; an array without file metadata; a CMYK JPEG, whose luminance was never stored)
is ``not_applicable`` with the reason. Greyscale JPEGs use their single channel.

``jpeg-dq``: aligned double-quantisation (A-DJPG) analysis
    after Lin, He, Tang & Tang, "Fast, automatic and fine-grained tampered JPEG image detection
    via DCT coefficient analysis", Pattern Recognition 42(11), 2009, and Bianchi & Piva, "Image
    forgery localization via block-grained analysis of JPEG artifacts", IEEE TIFS 7(3), 2012; the
    primary-quantisation estimate follows the calibration idea of Lukas & Fridrich, "Estimation
    of primary quantization matrix in double compressed JPEG images", DFRWS 2003.

    1. ``Y`` (BT.601 luminance of the decoded RGB, level-shifted by 128) is cut into the stored
       8x8 blocks; the orthonormal DCT of each block divided by the stored luminance table
       ``Q2`` estimates the quantised coefficients ``x`` of the last compression (rounded). The
       error of that estimate (decoder rounding, colour conversion) gives the noise ``sigma``
       per frequency (RMS of ``C - Q2 x``).
    2. The unquantised distribution ``U`` of each frequency is estimated from the DCT on the grid
       shifted by (4, 4) px, where the last quantisation leaves no lattice (Lukas & Fridrich's
       calibration). From it, for every candidate primary step ``Q1`` in ``1..q1_max``:
       single compression ``p1(x) = P(round(U/Q2) = x)`` and double compression
       ``p2(x; Q1) = P(round((round(U/Q1) Q1 + e)/Q2) = x)``, ``e ~ N(0, sigma^2)``, both seen
       through the same estimation noise.
    3. The observed histogram of ``x`` is fitted by the mixture ``(1 - a) p2(Q1) + a p1`` (EM
       for ``a``) for every ``Q1``; the best ``Q1`` is the primary-step estimate. A frequency is
       used only when that mixture explains the histogram better than single compression by at
       least ``min_gain`` nats per coefficient and ``Q1 != Q2``; the first ``n_freqs`` AC
       coefficients in zig-zag order with ``Q2 >= min_q2`` are examined (low and middle
       frequencies: higher ones are mostly quantised to 0 and carry no periodicity).
    4. Per block, the log-likelihood ratio ``sum_f log p2_f(x) / p1_f(x)`` over the used
       frequencies (each term clipped to ``+-llr_clip``), averaged over ``smooth x smooth``
       blocks, gives ``P(double) = sigmoid(LLR)`` at equal priors; the raw map is
       ``1 - P(double)`` per block (higher = lacks the traces of the earlier compression the
       rest of the image shows: pasted from a non-aligned or uncompressed source, or
       resampled), constant over each 8x8 block. Image statistic: the share of blocks whose raw
       value exceeds 0.5.

    No usable frequency (a single-compressed JPEG, or an earlier compression at the same or a
    finer quality) means there is nothing to compare: ``not_applicable``. Blocks with clipped
    pixels (any channel at 0 or 255 on more than 1/8 of the block) break the model and get
    ``LLR = 0``. Flat blocks (all examined coefficients 0) carry little evidence and lean
    towards "double" when ``Q1 > Q2``. Misses: splices that kept the host's grid alignment and
    quality history, copy-move by multiples of 8 px, and everything after a resize of the whole
    image.

``jpeg-grid``: block-artifact grid alignment
    after Li, Yuan & Yu, "Passive detection of doctored JPEG image via block artifact grid
    extraction", Signal Processing 89(9), 2009 (BAG), as a local grid-alignment estimate.

    1. Blocking shows as jumps across block borders larger than the jumps beside them. For every
       column boundary ``x|x+1`` the excess jump ``|d(x)| - (|d(x-1)| + |d(x+1)|) / 2`` of the
       horizontal luminance difference ``d`` (and the same for rows) is clipped to
       ``+-clip`` grey levels (strong edges must not vote) and summed per 8x8 cell of the stored
       grid by phase ``x mod 8``: 8 horizontal and 8 vertical phase sums per cell.
    2. In a sliding window of ``window`` px (stride one cell) the phase profiles are turned into
       z-scores (per-phase mean minus the mean over phases, over its standard error); the
       dominant phase pair of the whole image is the global grid (one of the 64 offsets;
       ``(7, 7)`` when the last or an aligned earlier compression dominates).
    3. Raw window value: for each direction, the strongest competing phase's z minus the global
       phase's z, summed over both directions: strongly negative where the window shows the
       global grid, near +1.4 each where no grid is visible (uncompressed or resampled content),
       strongly positive where another grid dominates (content pasted from another JPEG at a
       shift). Windows covering each cell are averaged; the cell map is bilinearly upsampled.
       Image statistic: the 99th percentile of the cell map.

    The contrast needs the earlier blocking to survive the last compression: it is strong when
    the host or donor was compressed at a lower quality than the final save. An image whose
    global grid is not visible at all (z below ``min_grid_z``) is ``not_applicable``. Flat or
    clipped regions show no grid and read as "missing".

Both maps and image statistics are mapped to ``[0, 1]`` by Platt curves fitted on seeded
generator data with JPEG-compressed hosts (``artifacts train manipulation --model jpeg-dq`` /
``--model jpeg-grid``); parameters were chosen on generator seeds disjoint from those
(``artifacts.datasets``), never on real evaluation sets. Memory: both passes run in horizontal
bands of ``band`` px; what is kept for the whole image is per block (``n_freqs`` small integers)
or per cell (16 floats), i.e. at most a quarter of the size of the float32 output map.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from artifacts.detectors.calibrated import CalibratedDetector, Raw
from artifacts.registry import register_model
from artifacts.types import Detection
from artifacts.weights import WeightSpec

#: generator settings for the calibration recipe: every photo (host and donor) is a JPEG
#: before the edit and the result is saved as a JPEG (``calibration_encoding``); no post-chain
#: between (a resize, blur or noise of the whole image erases what both methods read)
JPEG_CALIBRATION_GENERATOR = {"host_jpeg": (60, 95), "post_prob": 0.0}


# ----------------------------------------------------------------------------- shared


def _dct_matrix() -> np.ndarray:
    k = np.arange(8)
    d = np.sqrt(2 / 8) * np.cos((2 * k[None, :] + 1) * k[:, None] * np.pi / 16)
    d[0] /= np.sqrt(2)
    return d.astype(np.float32)


DCT8 = _dct_matrix()


def zigzag(n: int) -> list[tuple[int, int]]:
    """The first ``n`` (row, col) frequencies in JPEG zig-zag order (row = vertical frequency)."""
    cells = [(i, j) for i in range(8) for j in range(8)]
    cells.sort(key=lambda c: (c[0] + c[1], -c[0] if (c[0] + c[1]) % 2 == 0 else c[0]))
    return cells[:n]


def luminance(pixels: np.ndarray, grey: bool) -> np.ndarray:
    """JPEG (BT.601) luminance on the 8-bit scale, float32; the single channel when ``grey``."""
    scale = 255.0 / 65535.0 if pixels.dtype == np.uint16 else 1.0
    if grey:
        return pixels[..., 0].astype(np.float32) * np.float32(scale)
    rgb = pixels.astype(np.float32)
    return (rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114) * np.float32(scale)


def clipped(pixels: np.ndarray) -> np.ndarray:
    """Per pixel: True where any channel is at 0 or at the white point."""
    top = 65535 if pixels.dtype == np.uint16 else 255
    r, g, b = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    return (np.minimum(np.minimum(r, g), b) == 0) | (np.maximum(np.maximum(r, g), b) >= top)


def block_dct(y: np.ndarray) -> np.ndarray:
    """Orthonormal 8x8 DCT (JPEG's FDCT) of every block: (8a, 8b) -> (a, b, 8, 8)."""
    a, b = y.shape[0] // 8, y.shape[1] // 8
    blocks = y[: 8 * a, : 8 * b].reshape(a, 8, b, 8).transpose(0, 2, 1, 3)
    return DCT8 @ blocks @ DCT8.T


def stored_grid(image, model: str):
    """``(pixels on the stored grid, orientation to redo, luminance table 8x8, grey)`` or a
    ``not_applicable`` Detection saying why the JPEG analysis cannot run."""
    from artifacts.io import orient_array

    meta = getattr(image, "meta", None) or {}
    fmt = meta.get("format")
    if fmt != "JPEG":
        what = f"a {fmt} file" if fmt else "an image without file metadata (format unknown)"
        return Detection.not_applicable(
            f"not a JPEG file: {model} reads the 8x8 grid and quantisation tables of a JPEG file, got {what}")
    tables = (meta.get("jpeg") or {}).get("qtables") or {}
    if not tables:
        return Detection.not_applicable(f"JPEG without quantisation tables in meta['jpeg']: {model} needs them")
    if meta.get("converted_from") == "CMYK":
        return Detection.not_applicable(f"CMYK/YCCK JPEG: no luminance channel was stored, {model} does not apply")
    table = tables.get("0", tables[min(tables)])
    if len(table) != 64:
        return Detection.not_applicable(f"unexpected quantisation table of {len(table)} entries")
    pixels = image.pixels
    orientation = int(meta.get("exif_orientation", 1)) if meta.get("orientation_applied") else 1
    if orientation != 1:
        pixels = orient_array(pixels, orientation, inverse=True)
    size = meta.get("size")
    if size is not None and [pixels.shape[1], pixels.shape[0]] != list(size):
        return Detection.not_applicable(
            f"pixels ({pixels.shape[1]}x{pixels.shape[0]}) are not the stored grid {size[0]}x{size[1]} "
            "(resized or cropped after decoding)")
    grey = bool(meta.get("grayscale")) or bool((pixels[..., 0] == pixels[..., 1]).all()
                                                 and (pixels[..., 1] == pixels[..., 2]).all())
    return pixels, orientation, np.asarray(table, np.float32).reshape(8, 8), grey


def finish_map(cell_map: np.ndarray, cell_px: int, shape: tuple[int, int], orientation: int,
               smooth: bool) -> np.ndarray:
    """Cell map -> pixel map on the stored grid (edge cells extended), then re-oriented."""
    import cv2

    from artifacts.io import orient_array

    h, w = shape
    hc, wc = -(-h // cell_px), -(-w // cell_px)
    full_cells = np.pad(cell_map, ((0, hc - cell_map.shape[0]), (0, wc - cell_map.shape[1])), mode="edge")
    if smooth:
        full = cv2.resize(full_cells.astype(np.float32), (wc * cell_px, hc * cell_px), interpolation=cv2.INTER_LINEAR)
    else:
        full = np.repeat(np.repeat(full_cells.astype(np.float32), cell_px, 0), cell_px, 1)
    full = full[:h, :w]
    if orientation != 1:
        full = orient_array(full, orientation)
    return np.ascontiguousarray(full, dtype=np.float32)


def _box_mean(grid: np.ndarray, size: int) -> np.ndarray:
    """Mean over a ``size x size`` neighbourhood (same shape; edges use the cells that exist)."""
    from scipy.ndimage import uniform_filter

    ones = uniform_filter(np.ones(grid.shape[:2]), size, mode="constant")
    if grid.ndim == 3:
        ones = ones[..., None]
        size = (size, size, 1)
    return uniform_filter(grid, size, mode="constant") / ones


# ------------------------------------------------------------------------- jpeg-dq


@dataclass
class JpegDQConfig:
    n_freqs: int = 15  # AC coefficients examined, first in zig-zag order
    min_q2: int = 2  # frequencies quantised finer than this in the last compression are skipped
    q1_max: int = 64  # largest primary step considered
    min_gain: float = 0.01  # nats per coefficient the double-compression mixture must gain
    llr_clip: float = 4.0  # per-coefficient bound of the log-likelihood ratio
    smooth: int = 3  # blocks averaged (a side) before the posterior
    clip_fraction: float = 0.125  # blocks with more clipped pixels than this carry no evidence
    band: int = 1024  # rows (px) per pass: memory bound
    threshold: float | None = None  # operating threshold (default: the weights' threshold, 0.5)


DQ_CALIBRATION = WeightSpec(
    tag="calib-v1",
    file="jpeg_dq_calib-v1.json",
    sha256=None,
    license="Apache-2.0",
    source="fitted by this package on seeded synthetic manipulations of JPEG-compressed scikit-image photos",
    train_command="artifacts train manipulation --model jpeg-dq -o DIR",
    input_spec={"format": "JPEG file", "color": "RGB or greyscale", "min_side": 64, "resize": "never"},
    output="heatmap: P(block lacks the double-compression traces of the image); score: P(image manipulated)",
    threshold=0.5,
    package="artifacts.detectors.manipulation.weights",
)


def _noise_kernel(q2: float, sigma: float) -> np.ndarray:
    """P(round(n / q2) = d) for n ~ N(0, sigma^2), d = -r..r."""
    from scipy.special import ndtr

    r = int(np.ceil(3 * sigma / q2)) + 1
    d = np.arange(-r, r + 1)
    k = ndtr((d + 0.5) * q2 / sigma) - ndtr((d - 0.5) * q2 / sigma)
    return k / k.sum()


def quantisation_models(u_hist: np.ndarray, u_centres: np.ndarray, q2: float, sigma: float,
                        q1s: np.ndarray, kmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Single- and double-compression pmfs of the observed quantised coefficient.

    ``u_hist`` are counts of the calibrated (unquantised) coefficient at ``u_centres``; returns
    ``p1`` (2 kmax + 1,) and ``p2`` (len(q1s), 2 kmax + 1) over x = -kmax..kmax, both convolved
    with the estimation noise of x.
    """
    from scipy.special import ndtr

    keep = u_hist > 0
    mass, u = u_hist[keep] / u_hist.sum(), u_centres[keep]
    nk, nq = 2 * kmax + 1, len(q1s)
    obs = _noise_kernel(q2, sigma)
    k1 = np.clip(np.rint(u / q2), -kmax, kmax).astype(np.int64) + kmax
    p1 = np.convolve(np.bincount(k1, weights=mass, minlength=nk), obs, mode="same")
    # mass per (Q1, m) with m = round(u / Q1): few distinct m for large Q1
    mmax = int(np.ceil(np.abs(u).max())) + 1
    m = np.rint(u[None, :] / q1s[:, None]).astype(np.int64)
    per_m = np.bincount((np.arange(nq)[:, None] * (2 * mmax + 1) + m + mmax).ravel(),
                        weights=np.broadcast_to(mass, m.shape).ravel(), minlength=nq * (2 * mmax + 1))
    nz = np.flatnonzero(per_m)
    qi, mi = np.divmod(nz, 2 * mmax + 1)
    v, w = (mi - mmax) * q1s[qi], per_m[nz]  # dequantised primary values and their mass
    centre = np.rint(v / q2)
    r = int(np.ceil(3 * sigma / q2)) + 1
    p2 = np.zeros(nq * nk)
    for d in range(-r, r + 1):
        k = centre + d
        p = ndtr(((k + 0.5) * q2 - v) / sigma) - ndtr(((k - 0.5) * q2 - v) / sigma)
        p2 += np.bincount(qi * nk + np.clip(k, -kmax, kmax).astype(np.int64) + kmax, weights=p * w, minlength=p2.size)
    p2 = p2.reshape(nq, nk)
    from scipy.signal import convolve

    p2 = convolve(p2, obs[None, :], mode="same")
    return p1, np.clip(p2, 0.0, None)


def fit_primary(hist: np.ndarray, p1: np.ndarray, p2: np.ndarray, iters: int = 25, eps: float = 1e-6):
    """EM fit of ``(1 - a) p2[Q1] + a p1`` to the observed histogram for every candidate Q1.

    Returns (share ``a`` of single-compressed coefficients, gain over ``p1`` in nats per
    coefficient), one each per candidate."""
    n = hist.sum()
    p1e, p2e = p1 + eps, p2 + eps
    a = np.full(p2.shape[0], 0.5)
    for _ in range(iters):
        mix = (1 - a[:, None]) * p2e + a[:, None] * p1e
        a = ((hist[None, :] * a[:, None] * p1e / mix).sum(1) / n).clip(0.0, 1.0)
    mix = (1 - a[:, None]) * p2e + a[:, None] * p1e
    gain = (hist[None, :] * (np.log(mix) - np.log(p1e)[None, :])).sum(1) / n
    return a, gain


@register_model(
    "manipulation",
    "jpeg-dq",
    config=JpegDQConfig,
    weights=(DQ_CALIBRATION,),
    description="training-free aligned double-JPEG-quantisation analysis (Lin et al. 2009; Bianchi & Piva 2012)",
)
class JpegDQDetector(CalibratedDetector):
    """Per-block likelihood of aligned double JPEG compression; JPEG files only."""

    calibration_kinds = ("splice", "splice_blend", "copymove", "removal")
    calibration_encoding = "jpeg"
    calibration_generator = JPEG_CALIBRATION_GENERATOR

    def raw(self, image) -> Raw | Detection:
        cfg = self.config
        got = stored_grid(image, "jpeg-dq")
        if isinstance(got, Detection):
            return got
        pixels, orientation, qtable, grey = got
        h, w = pixels.shape[:2]
        nby, nbx = h // 8, w // 8
        if nby < 8 or nbx < 8:
            return Detection.not_applicable(f"image too small ({w}x{h}): jpeg-dq needs at least 64 px a side")
        freqs = [f for f in zigzag(cfg.n_freqs + 1)[1:] if qtable[f] >= cfg.min_q2]
        if not freqs:
            return Detection.not_applicable(
                f"the last compression is too fine (quantisation steps < {cfg.min_q2} at all examined frequencies)")
        fi = np.array([f[0] for f in freqs]), np.array([f[1] for f in freqs])
        q2 = qtable[fi]
        nf = len(freqs)
        x = np.zeros((nby, nbx, nf), np.int32)
        bad = np.zeros((nby, nbx), bool)
        err2 = np.zeros(nf)
        width, span = 0.5, 1100.0  # histogram of calibrated coefficients: bin width, range
        nbins = int(2 * span / width) + 1
        u_hist = np.zeros((nf, nbins))
        rows = max(8, cfg.band - cfg.band % 8)
        for y0 in range(0, 8 * nby, rows):
            y1 = min(y0 + rows, 8 * nby)
            px = pixels[y0:y1, : 8 * nbx]
            lum = luminance(px, grey) - 128.0
            c = block_dct(lum)[:, :, fi[0], fi[1]] / q2
            xb = np.rint(c)
            clip = clipped(px).reshape(-1, 8, nbx, 8).mean((1, 3)) > cfg.clip_fraction
            x[y0 // 8 : y1 // 8], bad[y0 // 8 : y1 // 8] = xb.astype(np.int32), clip
            err2 += (((c - xb) * q2) ** 2)[~clip].sum(0)
            # calibration: the grid shifted by (4, 4), on the rows of this band
            ys = luminance(pixels[y0 + 4 : min(y1 + 4, h), 4:], grey)
            if ys.shape[0] >= 8 and ys.shape[1] >= 8:
                cs = block_dct(ys - 128.0)[:, :, fi[0], fi[1]].reshape(-1, nf)
                idx = np.clip(np.rint((cs + span) / width), 0, nbins - 1).astype(np.int64)
                for j in range(nf):
                    u_hist[j] += np.bincount(idx[:, j], minlength=nbins)
        good = ~bad
        n_good = int(good.sum())
        if n_good < 64:
            return Detection.not_applicable("fewer than 64 unclipped 8x8 blocks: nothing to analyse")
        rms = np.sqrt(err2 / n_good)
        measurable = q2 >= 4 * np.maximum(rms, 0.1)
        ref = float(np.median(rms[measurable])) if measurable.any() else 0.5
        sigma = np.where(measurable, np.maximum(rms, 0.2), max(ref, 0.2))

        centres = np.arange(nbins) * width - span
        q1s = np.arange(1, cfg.q1_max + 1, dtype=np.float64)
        llr = np.zeros((nby, nbx))
        used = []
        for j in range(nf):
            kmax = int(max(np.abs(x[..., j]).max(), np.abs(centres[u_hist[j] > 0]).max() / q2[j])) + 4
            p1, p2 = quantisation_models(u_hist[j], centres, float(q2[j]), float(sigma[j]), q1s, kmax)
            xj = np.clip(x[..., j], -kmax, kmax) + kmax
            hist = np.bincount(xj[good], minlength=2 * kmax + 1).astype(np.float64)
            share, gain = fit_primary(hist, p1, p2)
            gain[q1s == q2[j]] = -np.inf  # Q1 == Q2 is single compression again
            best = int(np.argmax(gain))
            if gain[best] < cfg.min_gain:
                continue
            table = np.clip(np.log(p2[best] + 1e-6) - np.log(p1 + 1e-6), -cfg.llr_clip, cfg.llr_clip)
            llr += table[xj]
            used.append({"freq": list(freqs[j]), "q2": int(q2[j]), "q1": int(q1s[best]),
                         "gain": round(float(gain[best]), 4), "single_share": round(float(share[best]), 3)})
        if not used:
            return Detection.not_applicable(
                "no trace of an earlier aligned JPEG compression (single-compressed, or compressed before "
                "at the same or a finer quality): jpeg-dq has nothing to compare")
        llr[bad] = 0.0
        llr_s = _box_mean(llr, cfg.smooth) if cfg.smooth > 1 else llr
        block_map = 1.0 / (1.0 + np.exp(np.clip(llr_s, -60, 60)))  # 1 - P(double)
        full = finish_map(block_map, 8, (h, w), orientation, smooth=False)
        return Raw(
            map=full,
            stat=float((block_map[good] > 0.5).mean()),
            diagnostics={"frequencies": used, "noise_sigma": [round(float(s), 3) for s in sigma],
                         "clipped_blocks": round(float(bad.mean()), 4)},
            preprocessing={"resize": None, "pad": None, "band_px": rows, "luminance": "BT.601",
                           "grid": "stored", "orientation_undone": orientation},
        )


# ----------------------------------------------------------------------- jpeg-grid


@dataclass
class JpegGridConfig:
    window: int = 64  # window side (px), a multiple of 8
    clip: float = 4.0  # excess jumps are clipped to +-clip grey levels
    min_grid_z: float = 4.0  # below this whole-image grid z-score the image is not applicable
    band: int = 1024  # rows (px) per pass: memory bound
    threshold: float | None = None  # operating threshold (default: the weights' threshold, 0.5)


GRID_CALIBRATION = WeightSpec(
    tag="calib-v1",
    file="jpeg_grid_calib-v1.json",
    sha256=None,
    license="Apache-2.0",
    source="fitted by this package on seeded synthetic manipulations of JPEG-compressed scikit-image photos",
    train_command="artifacts train manipulation --model jpeg-grid -o DIR",
    input_spec={"format": "JPEG file", "color": "RGB or greyscale", "min_side": 64, "resize": "never"},
    output="heatmap: P(pixel's 8x8 blocking grid is shifted or missing); score: P(image manipulated)",
    threshold=0.5,
    package="artifacts.detectors.manipulation.weights",
)


def excess_jumps(y: np.ndarray, clip: float) -> tuple[np.ndarray, np.ndarray]:
    """Excess jump across every column boundary ``x|x+1``: ``|d(x)| - (|d(x-1)| + |d(x+1)|) / 2``
    with ``d`` the horizontal difference, clipped to ``+-clip``; returned at column ``x`` (same
    shape as ``y``) with a mask of the boundaries that have both neighbours."""
    a = np.abs(np.diff(y, axis=1))
    e = np.zeros(y.shape, np.float32)
    valid = np.zeros(y.shape, bool)
    if y.shape[1] >= 4:
        e[:, 1:-2] = np.clip(a[:, 1:-1] - 0.5 * (a[:, :-2] + a[:, 2:]), -clip, clip)
        valid[:, 1:-2] = True
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
    sums = {ax: [np.zeros((hc, wc, 8)) for _ in range(3)] for ax in (0, 1)}
    for y0 in range(0, 8 * hc, band):
        y1 = min(y0 + band, 8 * hc)
        e, valid = excess_jumps(luminance(pixels[y0:y1], grey), clip)
        for acc, part in zip(sums[1], cell_phase_sums(e[:, : 8 * wc], valid[:, : 8 * wc], 1)):
            acc[y0 // 8 : y1 // 8] = part
        a, b = max(y0 - 1, 0), min(y1 + 2, h)  # boundary rows y0..y1-1 need rows y-1..y+2
        e, valid = excess_jumps(luminance(pixels[a:b], grey).T, clip)
        e, valid = e.T[y0 - a : y1 - a, : 8 * wc], valid.T[y0 - a : y1 - a, : 8 * wc]
        for acc, part in zip(sums[0], cell_phase_sums(e, valid, 0)):
            acc[y0 // 8 : y1 // 8] = part
    return sums


def phase_z(s: np.ndarray, s2: np.ndarray, n: np.ndarray) -> np.ndarray:
    """z-score of each phase's mean excess against the mean over all phases (last axis)."""
    total = n.sum(-1, keepdims=True).clip(min=1)
    mu = s.sum(-1, keepdims=True) / total
    var = np.maximum(s2.sum(-1, keepdims=True) / total - mu**2, 1e-4)
    return (s / n.clip(min=1) - mu) / np.sqrt(var / n.clip(min=1))


def window_sum(grid: np.ndarray, k: int) -> np.ndarray:
    """Sums over every ``k x k`` block of cells, stride 1: (hc, wc, ...) -> (hc-k+1, wc-k+1, ...)."""
    c = np.cumsum(np.cumsum(grid, 0), 1)
    c = np.pad(c, ((1, 0), (1, 0)) + ((0, 0),) * (grid.ndim - 2))
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def spread(values: np.ndarray, k: int) -> np.ndarray:
    """Average, for every cell, of the window values covering it (inverse of window_sum)."""
    hw, ww = values.shape
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
        k = max(2, cfg.window // 8)
        hc, wc = h // 8, w // 8
        if hc < k or wc < k:
            return Detection.not_applicable(f"image too small ({w}x{h}): jpeg-grid needs {8 * k} px a side")
        rows = max(8, cfg.band - cfg.band % 8)
        sums = grid_cell_sums(pixels, grey, cfg.clip, rows)
        z_img = {ax: phase_z(*(part.sum((0, 1)) for part in sums[ax])) for ax in (0, 1)}
        pv, ph = int(np.argmax(z_img[0])), int(np.argmax(z_img[1]))
        grid_z = float(min(z_img[0][pv], z_img[1][ph]))
        if grid_z < cfg.min_grid_z:
            return Detection.not_applicable(
                f"no JPEG blocking grid visible (z = {grid_z:.1f} < {cfg.min_grid_z}): jpeg-grid has nothing to compare")
        r = 0.0
        for ax, phase in ((0, pv), (1, ph)):
            z = phase_z(*(window_sum(part, k) for part in sums[ax]))
            others = np.delete(z, phase, axis=-1).max(-1)
            r = r + (others - z[..., phase])
        cell_map = spread(r, k)
        full = finish_map(cell_map, 8, (h, w), orientation, smooth=True)
        return Raw(
            map=full,
            stat=float(np.quantile(cell_map, 0.99)),
            diagnostics={"grid_phase": [pv, ph], "grid_z": round(grid_z, 2), "window_px": 8 * k},
            preprocessing={"resize": None, "pad": None, "band_px": rows, "luminance": "BT.601",
                           "grid": "stored", "orientation_undone": orientation},
        )
