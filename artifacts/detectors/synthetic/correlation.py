"""Local pixel-correlation statistics (training-free synthetic-image detector).

Camera photos and generated images are built differently at the scale of a few pixels: optics,
demosaicing, sensor noise and in-camera sharpening on one side; a learned decoder that paints
every pixel from a latent on the other. That shows in how a pixel is predicted from its
neighbours. Method:

1. Luminance (BT.601, 8-bit scale) only, so chroma subsampling (a JPEG container trait that most
   real photos carry and most generator PNGs do not) cannot be learned.
2. In every tile of ``tile`` px, the least-squares linear predictor of the (tile-centred) pixel
   from three symmetric neighbour sums: its 4 axial neighbours, its 4 diagonal ones and the 4 axial
   ones at distance 2 (ridge-regularised; a 2 px halo, reflected at the image border).
   Features per tile: the three weights and the prediction gain ``log(var(pixel) / var(error))``.
   On the training split, generated images put more weight on the diagonals and less on the
   nearest axial neighbours (smoother, more isotropic pixel correlations) and are more predictable.
3. Tiles that are flat (std below ``min_texture`` grey levels) or mostly clipped carry no
   correlation structure: they are left out of the image statistic (the per-feature median over
   the other tiles) and take its value in the map. The raw map is the per-tile features pooled
   over 3 x 3 tiles.
4. A logistic curve on the four features (``artifacts train synthetic --model correlation``,
   recipe ``synthetic-calibration``: 256 px centre crops of the ``synthetic`` split's training
   part, each stored once as PNG and once as JPEG) maps them to P(generated); held-out AUCs are
   in the calibration file.

Memory: luminance is formed one band of tile rows at a time; everything after works on the tile
grid. The image is never resized; pixels beyond the last whole tile (fewer than ``tile`` px at the
right and bottom) take the edge tiles' values in the heatmap.

What it sees: pixel-level smoothness and correlation typical of decoder output at native
resolution. What it does not see: generated images that were downscaled, sharpened, noised or
strongly JPEG-compressed (JPEG moves the weights towards those of real photos, which nearly all
have a JPEG past); real photos that were heavily denoised or upscaled can look generated.
Held-out AUC of the shipped calibration (132 crops of the split's held-out part): 0.82 overall,
0.89 as PNG, 0.75 as JPEG; the container AUC (JPEG copy vs PNG copy of the same crop) is 0.44.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from artifacts.calibration import Logistic
from artifacts.detectors.calibrated import Raw
from artifacts.detectors.manipulation.pixels import clipped, luminance
from artifacts.detectors.synthetic.base import CalibratedSynthetic
from artifacts.detectors.synthetic.spectral import blur3
from artifacts.registry import register_model
from artifacts.types import Detection
from artifacts.weights import WeightSpec

FEATURES = ("w_axial", "w_diagonal", "w_axial2", "gain")
HALO = 2
RIDGE = 1e-6  # relative ridge (to the mean diagonal of the Gram matrix), plus 1e-3 absolute


@dataclass
class CorrelationConfig:
    tile: int = 32  # tile size (px): one predictor per tile
    min_texture: float = 1.0  # tiles with a lower pixel std (grey levels) are flat: left out
    clip_fraction: float = 0.5  # tiles with more clipped pixels than this are left out
    band: int = field(default=8, metadata={"output": False})  # tile rows per luminance band (memory)
    threshold: float | None = None  # operating threshold (default: the weights' threshold, 0.5)

    def __post_init__(self) -> None:
        if self.tile < 8 or self.min_texture < 0 or not 0 <= self.clip_fraction <= 1 or self.band < 1:
            raise ValueError("correlation: tile >= 8, min_texture >= 0, clip_fraction in [0, 1], band >= 1")


CALIBRATION = WeightSpec(
    tag="calib-v1",
    file="correlation_calib-v1.json",
    sha256="83b04c97ac065d830307e671d16d3a2227619943c1bf5fcf6196f904e897b525",
    license="Apache-2.0",
    source="fitted by this package on the training part of the `synthetic` split (256 px centre crops, PNG + JPEG)",
    train_command="artifacts train synthetic --model correlation -o DIR",
    input_spec={"color": "RGB (luminance used)", "dtype": "uint8 or uint16", "min_side": 64, "resize": "never"},
    output="score: P(image generated); heatmap: P(generated) from each 3x3-tile neighbourhood; balanced priors",
    threshold=0.5,
    package="artifacts.detectors.synthetic.weights",
)


def tile_features(y: np.ndarray, tile: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-tile predictor features of a luminance band with a ``HALO`` px border.

    ``y``: (rows + 2 HALO, cols + 2 HALO), rows and cols multiples of ``tile``. Returns
    (features (4, rows/tile, cols/tile), pixel std per tile)."""
    h, w = y.shape[0] - 2 * HALO, y.shape[1] - 2 * HALO

    def at(dy, dx):
        return y[HALO + dy : HALO + dy + h, HALO + dx : HALO + dx + w]

    centre = at(0, 0)
    x = np.stack([
        at(-1, 0) + at(1, 0) + at(0, -1) + at(0, 1),
        at(-1, -1) + at(-1, 1) + at(1, -1) + at(1, 1),
        at(-2, 0) + at(2, 0) + at(0, -2) + at(0, 2),
    ]).astype(np.float64)
    hb, wb = h // tile, w // tile

    def tiles(a):  # (..., h, w) -> (..., hb, wb, tile * tile)
        a = a.reshape(*a.shape[:-2], hb, tile, wb, tile)
        return np.moveaxis(a, -3, -2).reshape(*a.shape[:-4], hb, wb, tile * tile)

    c, xt = tiles(centre.astype(np.float64)), tiles(x)
    c = c - c.mean(-1, keepdims=True)
    xt = xt - xt.mean(-1, keepdims=True)
    gram = np.einsum("kabi,labi->abkl", xt, xt)
    gram += (1e-3 + RIDGE * np.trace(gram, axis1=-2, axis2=-1) / 3)[..., None, None] * np.eye(3)
    coef = np.linalg.solve(gram, np.einsum("kabi,abi->abk", xt, c)[..., None])[..., 0]  # (hb, wb, 3)
    err = c - np.einsum("abk,kabi->abi", coef, xt)
    gain = np.log(c.var(-1) + 1e-3) - np.log(err.var(-1) + 1e-3)
    feats = np.concatenate([np.moveaxis(coef, -1, 0), gain[None]], axis=0)
    return feats.astype(np.float32), np.sqrt(c.var(-1)).astype(np.float32)


@register_model(
    "synthetic",
    "correlation",
    config=CorrelationConfig,
    weights=(CALIBRATION,),
    description="training-free: local linear-predictor pixel correlations per tile (luminance), logistic",
)
class CorrelationDetector(CalibratedSynthetic):
    """Training-free local pixel-correlation detector (see the module docstring)."""

    uncalibrated = Logistic((0.0,) * len(FEATURES), 0.0)  # 0.5 everywhere until calibrated
    feature_names = FEATURES

    def raw(self, image) -> Raw | Detection:
        cfg = self.config
        pixels = image.pixels
        h, w = pixels.shape[:2]
        t = cfg.tile
        hc, wc = h // t, w // t
        if hc < 2 or wc < 2:
            return Detection.not_applicable(f"image too small ({w}x{h}): needs at least {2 * t} px a side")
        feats = np.zeros((len(FEATURES), hc, wc), dtype=np.float32)
        texture = np.zeros((hc, wc), dtype=np.float32)
        clip = np.zeros((hc, wc), dtype=np.float32)
        for r0 in range(0, hc, cfg.band):
            r1 = min(hc, r0 + cfg.band)
            y0, y1 = r0 * t, r1 * t
            a, b = max(0, y0 - HALO), min(h, y1 + HALO)
            band = pixels[a:b, : wc * t + min(HALO, w - wc * t)]
            y = luminance(band)
            pad = ((HALO - (y0 - a), HALO - (b - y1)), (HALO, HALO - (band.shape[1] - wc * t)))
            y = np.pad(y, pad, mode="reflect")
            feats[:, r0:r1], texture[r0:r1] = tile_features(y, t)
            cl = clipped(pixels[y0:y1, : wc * t]).reshape(r1 - r0, t, wc, t)
            clip[r0:r1] = cl.mean(axis=(1, 3))
        valid = (texture >= cfg.min_texture) & (clip <= cfg.clip_fraction)
        if valid.sum() < 4:
            return Detection.not_applicable(f"too little texture: {int(valid.sum())} of {hc * wc} tiles "
                                            f"have a pixel std >= {cfg.min_texture:g} grey levels")
        stat = np.median(feats[:, valid], axis=1).astype(np.float64)
        filled = np.where(valid[None], feats, stat[:, None, None].astype(np.float32))
        local = np.moveaxis(blur3(np.moveaxis(filled, 0, -1)), -1, 0).astype(np.float32)
        return Raw(
            map=local,
            stat=stat,
            diagnostics={"features": dict(zip(FEATURES, np.round(stat, 4).tolist())),
                         "tiles_used": int(valid.sum()), "tiles": int(hc * wc)},
            preprocessing={"resize": None, "luminance": "BT.601", "tile_px": t,
                           "grid": {"cells": [hc, wc], "box": [0, 0, hc * t, wc * t]}},
        )
