"""High-pass noise-residual inconsistency (training-free splicing localisation).

Method (after Cozzolino, Poggi & Verdoliva, "Splicebuster: a new blind image splicing
detector", IEEE WIFS 2015, which builds on the co-occurrence residual features of Fridrich &
Kodovsky, "Rich models for steganalysis of digital images", IEEE TIFS 2012):

1. Luminance ``Y`` is high-pass filtered with the third-order derivative ``[-1, 3, -3, 1]``,
   horizontally and vertically: what remains is mostly sensor noise and processing traces.
2. Residuals are quantised and truncated to ``{-1, 0, 1}`` (step ``q``, ``T = 1``); four
   consecutive residuals along the filter direction form one of 81 co-occurrence codes, merged
   into 25 classes by sign and reversal symmetry.
3. Histograms of the classes in sliding windows (cells of ``cell`` px, windows of ``window``
   cells, stride one cell) are the local features (square-rooted: Hellinger embedding), reduced
   by PCA.
4. A robust Gaussian model (EM with a uniform outlier component) describes the camera/processing
   "fingerprint" of the majority of the image; each window's Mahalanobis distance to it, spread
   back to the cells it covers, is the raw map. Regions spliced from another source, inpainted or
   resampled have other residual statistics and stand out.
5. Raw map and image statistic are mapped to ``[0, 1]`` by Platt curves fitted on seeded
   generator data (``artifacts train manipulation --model noise-residual``).

Defaults (q = 2, 6-cell windows, 4 PCA dimensions) were chosen on seeded generator data
(pixel AUC over splice/blend/removal), never on the real evaluation sets.

Windows dominated by clipped (saturated or black) pixels carry no noise and are excluded from
the fit; their cells get the image's median raw value. Memory: the full-resolution residual
pass runs in tiles (``tile`` px, exact: tiled and untiled counts are identical); everything
after it works on the cell grid (1/``cell``^2 of the pixels).

What it sees: regions whose high-frequency residual differs from the rest of the image, above
all regions that were resampled (upscaled), blurred, median-filtered or inpainted (in tests, a
2x-upscaled 128 px square in a photo is found, see ``tests/test_noise_residual.py``), and, less reliably,
splices from sources with other residual statistics. What it does not see: copy-move within one
image (same noise), added noise (it looks like texture), splices between photos processed alike.
Image-level scores are weak: the image statistic (98th percentile of the raw map) separates
manipulated from authentic generator images only slightly (held-out AUC in the calibration
record), so the score stays near 0.5; use the heatmap. Strong JPEG compression or denoising
flattens residuals everywhere; dark or flat regions can raise false alarms. Images with fewer
than 4 windows a side (< 72 px) are ``not_applicable``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from artifacts.detectors.calibrated import CalibratedDetector, Raw
from artifacts.detectors.manipulation.pixels import clipped, luminance
from artifacts.registry import register_model
from artifacts.types import Detection
from artifacts.weights import WeightSpec

N_CODES = 81  # 3 ** 4 co-occurrence codes
FIT_WINDOWS = 4096  # at most this many windows fit the image's model


@dataclass
class NoiseResidualConfig:
    q: float = 2.0  # quantisation step of the residual (grey levels, 8-bit scale)
    cell: int = 8  # histogram cell size (px); the map's native resolution
    window: int = 6  # window size in cells (48 px): noise statistics do not scale with the image
    pca_dims: int = 4  # feature dimensions kept after PCA
    em_iters: int = 30
    clip_fraction: float = 0.5  # windows with more clipped pixels than this are left out of the fit
    tile: int = field(default=1024, metadata={"output": False})  # tile size (px) of the residual pass
    threshold: float | None = None  # operating threshold (default: the weights' threshold, 0.5)

    def __post_init__(self) -> None:
        if self.q <= 0 or self.cell < 2 or self.window < 1 or self.pca_dims < 1 or self.em_iters < 1:
            raise ValueError("noise-residual: q > 0, cell >= 2, window >= 1, pca_dims >= 1 and em_iters >= 1 are required")
        if not 0.0 <= self.clip_fraction <= 1.0 or self.tile < self.cell:
            raise ValueError("noise-residual: clip_fraction must be in [0, 1] and tile >= cell")


CALIBRATION = WeightSpec(
    tag="calib-v1",
    file="noise_residual_calib-v1.json",
    sha256="f1dd739026f2b1f9bb487a673a8d56e9bc3bb4b5a7138a07dd3cc610d540eea7",
    license="Apache-2.0",
    source="fitted by this package on seeded synthetic manipulations of scikit-image photos",
    train_command="artifacts train manipulation --model noise-residual -o DIR",
    input_spec={"color": "RGB", "dtype": "uint8 or uint16", "min_side": 72, "resize": "never"},
    output="heatmap: P(pixel manipulated); score: P(image manipulated); balanced priors",
    threshold=0.5,
    package="artifacts.detectors.manipulation.weights",
)


@lru_cache(maxsize=1)
def code_classes() -> tuple[np.ndarray, int]:
    """Map each of the 81 codes to a class merging a 4-tuple with its negation and its reversal."""
    digits = np.array([[(c // 3 ** (3 - k)) % 3 - 1 for k in range(4)] for c in range(N_CODES)])

    def encode(d):
        return int(((d + 1) * np.array([27, 9, 3, 1])).sum())

    canon = np.array([min(encode(d), encode(-d), encode(d[::-1]), encode(-d[::-1])) for d in digits])
    _, classes = np.unique(canon, return_inverse=True)
    return classes.astype(np.int64), int(classes.max()) + 1


def cell_histograms(pixels: np.ndarray, q: float, cell: int, tile: int, device: str = "cpu"):
    """Per-cell co-occurrence class counts, shape (Hc, Wc, K) int64, computed tile by tile.

    A code at (i, j) needs luminance from j-1 to j+5 (horizontal; i-1..i+5 vertical); each tile
    converts its owned block plus that halo to luminance, so tiled counts equal an untiled pass
    exactly and no full-resolution float copy of the image is made.
    """
    import torch

    classes, k = code_classes()
    classes_t = torch.as_tensor(classes, device=device)
    h, w = pixels.shape[:2]
    hc, wc = -(-h // cell), -(-w // cell)
    tile = max(cell, tile - tile % cell)
    hist = torch.zeros(hc * wc * k, dtype=torch.int64, device=device)
    weights = torch.tensor([27, 9, 3, 1], device=device)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            a, c = max(y0 - 1, 0), max(x0 - 1, 0)
            slab = torch.as_tensor(luminance(pixels[a : min(y1 + 5, h), c : min(x1 + 5, w)]), device=device)
            for axis in (1, 0):  # horizontal codes, then vertical
                s = slab if axis == 1 else slab.T
                r = s[:, :-3] - 3 * s[:, 1:-2] + 3 * s[:, 2:-1] - s[:, 3:]
                qz = (torch.round(r / q).clamp_(-1, 1) + 1).long()
                if qz.shape[1] < 4:
                    continue
                codes = sum(qz[:, i : qz.shape[1] - 3 + i] * weights[i] for i in range(4))
                # slab-local position of code column m is m + 1; map to global coordinates
                rows = torch.arange(codes.shape[0], device=device) + (a if axis == 1 else c)
                cols = torch.arange(codes.shape[1], device=device) + 1 + (c if axis == 1 else a)
                gy, gx = (rows[:, None], cols[None, :]) if axis == 1 else (cols[None, :], rows[:, None])
                own = (gy >= y0) & (gy < y1) & (gx >= x0) & (gx < x1)
                cells = (gy // cell) * wc + (gx // cell)
                idx = (cells * k + classes_t[codes])[own]
                hist += torch.bincount(idx, minlength=hist.numel())
    return hist.view(hc, wc, k)


def box_sum(grid, size: int):
    """Sums over every ``size x size`` block of cells (stride 1): (Hc, Wc, ...) -> (Hc-size+1, Wc-size+1, ...)."""
    import torch

    c = torch.nn.functional.pad(grid.cumsum(0).cumsum(1), [0, 0] * (grid.dim() - 2) + [1, 0, 1, 0])
    return c[size:, size:] - c[:-size, size:] - c[size:, :-size] + c[:-size, :-size]


def spread(window_values, size: int, out_shape):
    """Average, for every cell, the values of the windows that cover it."""
    import torch

    hw, ww = window_values.shape
    pad = torch.zeros(hw + 2 * (size - 1), ww + 2 * (size - 1), dtype=window_values.dtype, device=window_values.device)
    ones = torch.zeros_like(pad)
    pad[size - 1 : size - 1 + hw, size - 1 : size - 1 + ww] = window_values
    ones[size - 1 : size - 1 + hw, size - 1 : size - 1 + ww] = 1
    total, count = box_sum(pad, size), box_sum(ones, size)
    assert total.shape == tuple(out_shape), (total.shape, out_shape)
    return total / count.clamp_min(1)


def robust_gaussian(x, fit_mask, iters: int):
    """EM for a Gaussian + uniform-outlier mixture on the rows of ``x`` used for fitting.

    Returns (mean, inverse covariance, outlier share)."""
    import torch

    xf = x[fit_mask]
    d = x.shape[1]
    lo, hi = xf.min(0).values, xf.max(0).values
    log_u = -torch.log((hi - lo).clamp_min(1e-6)).sum()  # uniform density over the bounding box
    resp = torch.ones(xf.shape[0], dtype=x.dtype, device=x.device)
    pi = torch.tensor(0.1, dtype=x.dtype, device=x.device)
    eye = torch.eye(d, dtype=x.dtype, device=x.device)
    for _ in range(iters):
        wsum = resp.sum().clamp_min(1e-9)
        mu = (resp[:, None] * xf).sum(0) / wsum
        xc = xf - mu
        cov = (resp[:, None] * xc).T @ xc / wsum + 1e-6 * eye
        prec = torch.linalg.inv(cov)
        m2 = ((xc @ prec) * xc).sum(1)
        log_g = -0.5 * (m2 + torch.logdet(cov) + d * np.log(2 * np.pi))
        log_in = torch.log1p(-pi) + log_g
        log_out = torch.log(pi) + log_u
        resp = torch.sigmoid(log_in - log_out)  # P(inlier)
        pi = (1 - resp.mean()).clamp(1e-3, 0.5)
    return mu, prec, float(pi)


@register_model(
    "manipulation",
    "noise-residual",
    config=NoiseResidualConfig,
    weights=(CALIBRATION,),
    description="training-free noise-residual inconsistency (Splicebuster-style co-occurrence features, robust EM)",
)
class NoiseResidualDetector(CalibratedDetector):
    """Training-free high-pass noise-residual inconsistency detector."""

    #: manipulations a noise method can see; copy-move keeps the image's own noise (out of scope)
    calibration_kinds = ("splice", "splice_blend", "removal")

    def raw(self, image) -> Raw | Detection:
        """Raw Mahalanobis map at the image's size and its 98th percentile (see module docstring)."""
        import cv2
        import torch

        cfg = self.config
        pixels = image.pixels
        h, w = pixels.shape[:2]
        win = cfg.window
        hc, wc = -(-h // cfg.cell), -(-w // cfg.cell)
        if hc - win + 1 < 4 or wc - win + 1 < 4:
            need = (win + 3) * cfg.cell
            return Detection.not_applicable(f"image too small ({w}x{h}): needs at least {need} px a side")
        hist = cell_histograms(pixels, cfg.q, cfg.cell, cfg.tile, self.device).double()
        clip = torch.as_tensor(clipped(pixels).astype(np.uint8), device=self.device)
        clip = torch.nn.functional.pad(clip, (0, wc * cfg.cell - w, 0, hc * cfg.cell - h))
        clip_cells = clip.view(hc, cfg.cell, wc, cfg.cell).double().mean((1, 3))

        counts = box_sum(hist, win)  # (Hw, Ww, K)
        feats = (counts / counts.sum(-1, keepdim=True).clamp_min(1)).sqrt()
        hw, ww, k = feats.shape
        x = feats.reshape(-1, k)
        fit = (box_sum(clip_cells[..., None], win)[..., 0] / win**2) <= cfg.clip_fraction
        # windows overlap (stride one cell): fitting on a lattice of at most FIT_WINDOWS of them keeps
        # the model fit's cost independent of the image size
        step = max(1, int(np.ceil(np.sqrt(hw * ww / FIT_WINDOWS))))
        lattice = torch.zeros_like(fit)
        lattice[::step, ::step] = True
        fit = (fit & lattice).reshape(-1)
        if int(fit.sum()) < max(16, k):
            fit = lattice.reshape(-1)
        xc = x - x[fit].mean(0)
        _, vecs = torch.linalg.eigh(xc[fit].T @ xc[fit] / int(fit.sum()))
        dims = min(cfg.pca_dims, k - 1)
        z = xc @ vecs[:, -dims:]
        mu, prec, outlier_share = robust_gaussian(z, fit, cfg.em_iters)
        zc = z - mu
        dist = ((zc @ prec) * zc).sum(1).clamp_min(0).sqrt() / np.sqrt(dims)  # ~1 for inliers
        dist = torch.where(fit, dist, dist[fit].median())
        cell_map = spread(dist.view(hw, ww), win, (hc, wc)).float().cpu().numpy()
        # cell centres sit at (i + 0.5) * cell: resize the padded grid, then crop to the image
        full = cv2.resize(cell_map, (wc * cfg.cell, hc * cfg.cell), interpolation=cv2.INTER_LINEAR)[:h, :w]
        return Raw(
            map=np.ascontiguousarray(full),
            stat=float(np.quantile(cell_map, 0.98)),
            diagnostics={"window_px": win * cfg.cell, "cell_px": cfg.cell, "pca_dims": dims,
                         "outlier_share": round(outlier_share, 4)},
            preprocessing={"resize": None, "pad": None, "tile_px": cfg.tile, "luminance": "BT.601"},
        )
