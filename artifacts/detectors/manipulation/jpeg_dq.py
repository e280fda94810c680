"""``manipulation/jpeg-dq``: aligned double-quantisation (A-DJPG) analysis of JPEG files.

JPEG files only, analysed on the stored 8x8 grid of the last compression (applicability, EXIF
orientation and greyscale handling: :mod:`artifacts.detectors.manipulation.jpeg_blocks`).

Method after Lin, He, Tang & Tang, "Fast, automatic and fine-grained tampered JPEG image detection
via DCT coefficient analysis", Pattern Recognition 42(11), 2009, and Bianchi & Piva, "Image
forgery localization via block-grained analysis of JPEG artifacts", IEEE TIFS 7(3), 2012; the
unquantised distribution comes from the "calibration" (shifted-grid DCT) of Lukas & Fridrich,
"Estimation of primary quantization matrix in double compressed JPEG images", DFRWS 2003.

1. ``Y`` (BT.601 luminance of the decoded pixels, minus 128) is cut into the stored 8x8 blocks;
   the orthonormal DCT of each block divided by the stored luminance table ``Q2`` and rounded
   estimates the quantised coefficients ``x`` of the last compression. The RMS of
   ``C - Q2 x`` (decoder rounding, colour conversion) is the estimation noise ``sigma`` per
   frequency.
2. The DCT on the grid shifted by (4, 4) px, where the last quantisation leaves no lattice,
   estimates the distribution of the unquantised coefficient ``U``. From it, for every
   candidate primary step ``Q1`` in ``Q2+1 .. q1_max`` (only a coarser first step empties
   histogram bins): single compression ``p1(x) = P(round(U / Q2) = x)``, double compression
   ``p2(x; Q1) = P(round((round(U / Q1) Q1 + e) / Q2) = x)``, ``e ~ N(0, sigma^2)``, both
   seen through the estimation noise. Zero-valued coefficients are left out (conditioning on
   ``x != 0``): the shifted-grid estimate is least faithful there and flat blocks carry no
   evidence.
3. The observed histogram of ``x`` is fitted by ``(1 - a) p2(Q1) + a p1`` (EM for the
   single-compressed share ``a``) for every ``Q1``; the best ``Q1`` is the primary-step
   estimate. A frequency is used when that fit beats single compression by ``min_gain``
   nats per coefficient and the double-compressed part explains the image
   (``a <= max_single_share``). Examined: the first ``n_freqs`` AC coefficients in zig-zag
   order with ``Q2 >= min_q2`` (low and middle frequencies; higher ones are mostly 0).
4. Per block, the log-likelihood ratio ``sum_f log p2_f(x) / p1_f(x)`` over the used
   frequencies (terms clipped to ``+-llr_clip``), averaged over ``smooth x smooth`` blocks,
   gives ``P(double) = sigmoid(LLR)`` at equal priors; the raw map is ``1 - P(double)``,
   constant over each 8x8 block (high = lacks the traces of the earlier compression the rest
   of the image shows: pasted from an uncompressed, resampled or grid-shifted source, or
   synthesised). Image statistic: the 99th percentile of the block map.

Fewer than ``min_freqs`` usable frequencies (a single-compressed JPEG; an earlier
compression at the same or a finer quality; a resize after it) means there is nothing to
compare: ``not_applicable``. Blocks with clipped pixels (any channel at 0 or 255 on more
than ``clip_fraction`` of the block) break the model and carry no evidence (LLR 0). Misses:
pasted content that kept the host's grid alignment and compression history (copy-move by
multiples of 8 px within the image), and all of it after a resize of the whole image.

Raw map and statistic are mapped to ``[0, 1]`` by Platt curves fitted on seeded generator data
with JPEG-compressed photos (``artifacts train manipulation --model jpeg-dq``, generator settings
in :data:`~artifacts.detectors.manipulation.jpeg_blocks.JPEG_CALIBRATION_GENERATOR`). Parameters
were chosen on generator seeds 50000-50119 and 60000-60199 (calibration-split photos, disjoint
from the calibration seeds), never on real evaluation sets. Memory: the pixels are read in
horizontal bands of ``band`` rows; kept for the whole image are ``n_freqs`` int16 per 8x8 block
(about half a byte per pixel), plus the float32 output map.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from artifacts.detectors.calibrated import CalibratedDetector, Raw
from artifacts.detectors.manipulation.jpeg_blocks import (
    JPEG_CALIBRATION_GENERATOR, block_dct, finish_map, stored_grid, zigzag)
from artifacts.detectors.manipulation.pixels import clipped, luminance
from artifacts.registry import register_model
from artifacts.types import Detection
from artifacts.weights import WeightSpec


def _box_mean(grid: np.ndarray, size: int) -> np.ndarray:
    """Mean over a ``size x size`` neighbourhood (same shape; edges use the cells that exist)."""
    from scipy.ndimage import uniform_filter

    return uniform_filter(grid, size, mode="constant") / uniform_filter(np.ones(grid.shape), size, mode="constant")


@dataclass
class JpegDQConfig:
    n_freqs: int = 15  # AC coefficients examined, first in zig-zag order
    min_q2: int = 2  # frequencies quantised finer than this in the last compression are skipped
    q1_max: int = 64  # largest primary step considered
    min_gain: float = 0.05  # nats per coefficient the double-compression mixture must gain
    max_single_share: float = 0.35  # the double-compressed part must explain most coefficients
    min_freqs: int = 3  # fewer usable frequencies: not applicable
    llr_clip: float = 2.0  # per-coefficient bound of the log-likelihood ratio
    smooth: int = 3  # blocks averaged (a side) before the posterior
    clip_fraction: float = 0.125  # blocks with more clipped pixels than this carry no evidence
    band: int = field(default=1024, metadata={"output": False})  # rows (px) per pass: memory bound
    threshold: float | None = None  # operating threshold (default: the weights' threshold, 0.5)

    def __post_init__(self) -> None:
        if not 1 <= self.n_freqs <= 63 or self.min_q2 < 1 or self.q1_max < 2 or self.min_freqs < 1:
            raise ValueError("jpeg-dq: 1 <= n_freqs <= 63, min_q2 >= 1, q1_max >= 2 and min_freqs >= 1 are required")
        if self.min_gain < 0 or not 0.0 <= self.max_single_share <= 1.0 or not 0.0 <= self.clip_fraction <= 1.0:
            raise ValueError("jpeg-dq: min_gain >= 0 and max_single_share, clip_fraction in [0, 1] are required")
        if self.llr_clip <= 0 or self.smooth < 1 or self.band < 8:
            raise ValueError("jpeg-dq: llr_clip > 0, smooth >= 1 and band >= 8 are required")


DQ_CALIBRATION = WeightSpec(
    tag="calib-v1",
    file="jpeg_dq_calib-v1.json",
    sha256="acacf1469e129a8d99145b77edc0040532b9d7182bbe17707951f11374c7521b",
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
        x = np.zeros((nby, nbx, nf), np.int16)
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
            clip = clipped(px, black="any").reshape(-1, 8, nbx, 8).mean((1, 3)) > cfg.clip_fraction
            x[y0 // 8 : y1 // 8], bad[y0 // 8 : y1 // 8] = xb.astype(np.int16), clip
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
            kmax = int(max(np.abs(x[..., j].astype(np.int64)).max(), np.abs(centres[u_hist[j] > 0]).max() / q2[j])) + 4
            p1, p2 = quantisation_models(u_hist[j], centres, float(q2[j]), float(sigma[j]), q1s, kmax)
            xj = np.clip(x[..., j].astype(np.int64), -kmax, kmax) + kmax
            hist = np.bincount(xj[good], minlength=2 * kmax + 1).astype(np.float64)
            # condition on x != 0: the zero bin is where the calibrated estimate is least
            # faithful (it sees the blocking of the last compression) and flat blocks carry
            # no evidence of the primary step
            hist[kmax] = 0.0
            p1, p2 = p1.copy(), p2.copy()
            p1[kmax], p2[:, kmax] = 0.0, 0.0
            p1 /= max(p1.sum(), 1e-12)
            p2 /= np.maximum(p2.sum(1, keepdims=True), 1e-12)
            if hist.sum() < 64:
                continue
            share, gain = fit_primary(hist, p1, p2)
            gain[q1s <= q2[j]] = -np.inf  # only coarser primary steps leave empty bins
            best = int(np.argmax(gain))
            if gain[best] < cfg.min_gain or share[best] > cfg.max_single_share:
                continue
            table = np.clip(np.log(p2[best] + 1e-6) - np.log(p1 + 1e-6), -cfg.llr_clip, cfg.llr_clip)
            table[kmax] = 0.0
            llr += table[xj]
            used.append({"freq": list(freqs[j]), "q2": int(q2[j]), "q1": int(q1s[best]),
                         "gain": round(float(gain[best]), 4), "single_share": round(float(share[best]), 3)})
        if len(used) < cfg.min_freqs:
            return Detection.not_applicable(
                "no trace of an earlier aligned JPEG compression (single-compressed, or compressed before "
                "at the same or a finer quality): jpeg-dq has nothing to compare")
        llr[bad] = 0.0
        llr_s = _box_mean(llr, cfg.smooth) if cfg.smooth > 1 else llr
        block_map = 1.0 / (1.0 + np.exp(np.clip(llr_s, -60, 60)))  # 1 - P(double)
        full = finish_map(block_map, 8, (h, w), orientation, smooth=False)
        return Raw(
            map=full,
            stat=float(np.quantile(block_map[good], 0.99)),
            diagnostics={"frequencies": used, "noise_sigma": [round(float(s), 3) for s in sigma],
                         "clipped_blocks": round(float(bad.mean()), 4)},
            preprocessing={"resize": None, "pad": None, "band_px": rows, "luminance": "BT.601",
                           "grid": "stored", "orientation_undone": orientation},
        )
