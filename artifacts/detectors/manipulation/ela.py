"""Error-level analysis, normalised by local image content (training-free).

Method (after N. Krawetz, "A picture's worth: digital image analysis and forensics", Black Hat
Briefings 2007; the re-save at several qualities follows the "JPEG ghosts" of H. Farid,
"Exposing digital forgeries from JPEG ghosts", IEEE TIFS 2009):

1. The image is re-saved as JPEG at each quality of ``qualities`` (IJG tables, libjpeg via
   OpenCV, 4:2:0 chroma; a greyscale image is re-saved as one channel) and decoded again. The
   error level of a pixel is the squared difference to its re-saved value, summed over RGB.
   Content that already went through a quantisation close to the re-save (a JPEG grid that was
   saved before, aligned with the current one) barely changes; content that did not (pasted
   from a lossless or otherwise compressed source, edited after the last save) changes more.
2. Error level also grows with texture: a raw ELA image mostly shows edges. So, per 8x8 block
   of the JPEG grid, the error energy ``E`` is compared with the block's activity ``A`` (energy
   of the high-pass residual ``x - GaussianBlur(x, hp_sigma)``): blocks are put into
   ``bins`` quantile bins of ``log A``; the median and MAD of ``log E`` in each bin
   (interpolated between bin centres) give the error level this image has *for that much
   texture*, and each block gets a robust z-score ``(log E - median) / (1.4826 MAD + 0.05)``.
   The comparison is against the image's own statistics, never a fixed table.
3. The z-scores of the qualities are averaged and smoothed over ``window`` x ``window`` blocks
   (48 px by default): the raw map (higher = more error than similar texture elsewhere in
   the image). Blocks that are mostly clipped (black, or a channel at the white point) carry
   no error level and get 0. The image statistic is the 99.9th percentile of the block map.
4. Raw map and statistic are mapped to ``[0, 1]`` by Platt curves fitted on seeded generator
   data (``artifacts train manipulation --model ela``).

Calibration: ELA needs a host that was a JPEG before the edit, so the calibration data come
from the generator with ``host_jpeg=(60, 95)`` (every photo, host and donor, JPEG-compressed
before the edit), no post-processing after the edit (``post_prob=0``: a resize, blur or noise
of the whole image erases the compression history ELA reads) and ``calibration_encoding =
"jpeg"`` (the edited image is stored as a JPEG of quality 70-95, the realistic case for
tampered photos). ``calibration_kinds`` are all four kinds: spliced donors were rescaled after
their own compression, removals are inpainted or cloned from a shifted place, and copy-moves
are pasted at an arbitrary offset, so in each the edited region loses the host's aligned
compression history (a copy moved by a multiple of 8 px keeps it and is invisible). Without
``host_jpeg`` the generator's edits carry no compression-history difference at all (held-out
pixel AUC 0.57, image AUC 0.53 in a trial calibration). The defaults (``qualities=[65, 80]``,
48 px window, 16 bins, ``hp_sigma=1``) were chosen on seeded generator samples (seeds apart
from the calibration seeds) whose untouched host was JPEG-compressed (q 60-90) before the edit:
there the raw map's pixel AUC was ~0.74 against ~0.60 without the content normalisation.
Nothing of ``../shared/data`` was used.

Scope: regions spliced from lossless or differently compressed sources into a JPEG, and
retouching after the last save; it needs the host to have been JPEG-compressed before the edit,
on the grid of the current image (a crop after that save hides the history), at a quality not
much above the final one. The map is one-sided: regions with *less* error than their texture
predicts (compressed harder before) are not flagged. Weak after resizing, blurring or strong
final compression (which erase compression history); a re-save at the same quality as before
changes little (once and twice compressed blocks then look alike). 16-bit images are rounded
to 8 bit for the re-save (recorded in ``preprocessing``). Memory: the re-save runs in tiles of
``tile`` px (multiples of 16, with a 16 px halo, so JPEG blocks and chroma upsampling match an
untiled pass); everything after it works on the 8x8 block grid. About 0.2 s per megapixel on
one CPU core. Images under 64 px a side or with fewer than 64 unclipped blocks are
``not_applicable``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from artifacts.detectors.calibrated import CalibratedDetector, Raw
from artifacts.registry import register_model
from artifacts.types import Detection
from artifacts.weights import WeightSpec

BLOCK = 8  # JPEG block size (px)
HALO = 16  # tile halo: one chroma MCU (4:2:0) either side
MIN_SIDE = 64
MIN_BLOCKS = 64
#: generator settings of the calibration data (``GeneratorConfig`` fields): every photo, host
#: and donor, is JPEG-compressed (q 60-95) before the edit, and the edited image is saved as a
#: JPEG (``calibration_encoding``) without a resize/blur/noise in between, which would erase the
#: compression history ELA reads (the settings of the JPEG-grid detectors, for comparability)
CALIBRATION_GENERATOR = {"host_jpeg": (60, 95), "post_prob": 0.0}


@dataclass
class ElaConfig:
    # JPEG re-save qualities; their z-maps are averaged (a list, so it round-trips through JSON)
    qualities: list[int] = field(default_factory=lambda: [65, 80])
    hp_sigma: float = 1.0  # Gaussian sigma (px) of the activity high-pass
    bins: int = 16  # activity bins of the content normalisation (fewer on small images)
    window: int = 6  # smoothing window in 8 px blocks (48 px)
    quantile: float = 0.999  # image statistic: this quantile of the block map
    tile: int = field(default=1024, metadata={"output": False})  # tile size (px) of the full-resolution pass
    threshold: float | None = None  # operating threshold (default: the weights' threshold, 0.5)


CALIBRATION = WeightSpec(
    tag="calib-v1",
    file="ela_calib-v1.json",
    sha256="49e746be7c5fcdc718568a6285b29c98931cecdde51ca22292d247b55e91a8dc",
    license="Apache-2.0",
    source="fitted by this package on seeded synthetic manipulations of scikit-image photos (stored as JPEG)",
    train_command="artifacts train manipulation --model ela -o DIR",
    input_spec={"color": "RGB or grey", "dtype": "uint8 (uint16 rounded to 8 bit)", "min_side": MIN_SIDE,
                "resize": "never"},
    output="heatmap: P(pixel manipulated); score: P(image manipulated); balanced priors",
    threshold=0.5,
    package="artifacts.detectors.manipulation.weights",
)


def _jpeg_roundtrip(pixels: np.ndarray, quality: int, grey: bool) -> np.ndarray:
    """Encode ``pixels`` (H,W,3 uint8 RGB) as JPEG at ``quality`` and decode again (float32)."""
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    if grey:
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(pixels[..., 0]), params)
        out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)[..., None]
    else:
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(pixels[..., ::-1]), params)
        out = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    if not ok:  # pragma: no cover - libjpeg does not fail on valid uint8 arrays
        raise RuntimeError("JPEG re-save failed")
    return out.astype(np.float32)


def _block_mean(x: np.ndarray) -> np.ndarray:
    """Mean over each full 8x8 block of an (H, W) array whose sides are multiples of 8."""
    h, w = x.shape
    return x.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).mean((1, 3))


def to8(pixels: np.ndarray) -> np.ndarray:
    """uint8 as is; uint16 rounded to 8 bit (``round(v / 257)``)."""
    if pixels.dtype == np.uint8:
        return pixels
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)


def is_grey(pixels: np.ndarray, rows: int = 256) -> bool:
    """True when all three channels are equal (checked a band of rows at a time)."""
    for y in range(0, pixels.shape[0], rows):
        band = pixels[y : y + rows]
        if not ((band[..., 0] == band[..., 1]).all() and (band[..., 0] == band[..., 2]).all()):
            return False
    return True


def block_energies(pixels: np.ndarray, qualities, hp_sigma: float, tile: int):
    """Per 8x8 block: error energy for each quality (Q, Hb, Wb), activity (Hb, Wb), clipped share
    (Hb, Wb), and whether the image is grey. ``pixels`` may be uint16 (rounded to 8 bit per tile).

    Only full blocks are kept (``Hb = H // 8``). Computed in tiles of ``tile`` px with a
    ``HALO`` px margin; tile origins are multiples of 16, so every tile sees the same JPEG
    blocks and chroma MCUs as an untiled pass.
    """
    import cv2

    h, w = pixels.shape[:2]
    hb, wb = h // BLOCK, w // BLOCK
    grey = is_grey(pixels)
    tile = max(2 * HALO, tile - tile % (2 * BLOCK))
    err = np.zeros((len(qualities), hb, wb), np.float32)
    act = np.zeros((hb, wb), np.float32)
    clip = np.zeros((hb, wb), np.float32)
    for y0 in range(0, hb * BLOCK, tile):
        for x0 in range(0, wb * BLOCK, tile):
            y1, x1 = min(y0 + tile, hb * BLOCK), min(x0 + tile, wb * BLOCK)
            a, c = max(0, y0 - HALO), max(0, x0 - HALO)
            slab = to8(pixels[a : min(h, y1 + HALO), c : min(w, x1 + HALO)])
            own = (slice(y0 - a, y1 - a), slice(x0 - c, x1 - c))
            f = slab.astype(np.float32)
            by, bx = slice(y0 // BLOCK, y1 // BLOCK), slice(x0 // BLOCK, x1 // BLOCK)
            hp = f - cv2.GaussianBlur(f, (0, 0), hp_sigma, borderType=cv2.BORDER_REFLECT)
            act[by, bx] = _block_mean((hp[own] ** 2).sum(-1))
            top = slab.max(-1)
            clip[by, bx] = _block_mean(((top >= 255) | (top == 0))[own].astype(np.float32))
            for i, q in enumerate(qualities):
                d = f[..., :1] if grey else f
                d = d - _jpeg_roundtrip(slab, q, grey)
                err[i, by, bx] = _block_mean((d[own] ** 2).sum(-1)) * (3.0 if grey else 1.0)
    return err, act, clip, grey


def content_z(log_e: np.ndarray, log_a: np.ndarray, ok: np.ndarray, bins: int) -> np.ndarray:
    """Robust z-score of ``log_e`` given ``log_a``: binned median/MAD, linear between bin centres."""
    xs, ys = log_a[ok], log_e[ok]
    order = np.argsort(xs, kind="stable")
    xs, ys = xs[order], ys[order]
    parts = np.array_split(np.arange(xs.size), bins)  # equal-count (quantile) bins
    cen = np.array([np.median(xs[p]) for p in parts])
    med = np.array([np.median(ys[p]) for p in parts])
    mad = np.array([np.median(np.abs(ys[p] - m)) for p, m in zip(parts, med)])
    cen, keep = np.unique(cen, return_index=True)  # np.interp needs increasing centres
    med, mad = med[keep], mad[keep]
    z = (log_e - np.interp(log_a, cen, med)) / (1.4826 * np.interp(log_a, cen, mad) + 0.05)
    return np.where(ok, z, 0.0).astype(np.float32)


@register_model(
    "manipulation",
    "ela",
    config=ElaConfig,
    weights=(CALIBRATION,),
    description="training-free error-level analysis (JPEG re-save), normalised by local content",
)
class ElaDetector(CalibratedDetector):
    """Training-free error-level analysis with content-normalised error levels."""

    #: every kind can leave a region with another compression history than a JPEG host
    calibration_kinds = ("splice", "splice_blend", "copymove", "removal")
    #: ELA is about JPEG re-saves: samples are stored as JPEG ...
    calibration_encoding = "jpeg"
    #: ... from hosts that were JPEGs before the edit, with nothing in between (module docstring)
    calibration_generator = CALIBRATION_GENERATOR

    def raw(self, image) -> Raw | Detection:
        """Raw content-normalised error-level map and its high quantile (see module docstring)."""
        import cv2

        cfg = self.config
        pixels = image.pixels
        h, w = pixels.shape[:2]
        if min(h, w) < MIN_SIDE:
            return Detection.not_applicable(f"image too small ({w}x{h}): needs at least {MIN_SIDE} px a side")
        qualities = [cfg.qualities] if isinstance(cfg.qualities, (int, float)) else list(cfg.qualities)
        if not qualities or any(not 1 <= int(q) <= 100 for q in qualities):
            raise ValueError(f"qualities must be JPEG qualities in 1..100, got {cfg.qualities}")
        pre: dict = {"resize": None, "pad": None, "tile_px": cfg.tile, "resave": "JPEG (OpenCV/libjpeg, 4:2:0)"}
        if pixels.dtype == np.uint16:
            pre["bit_depth"] = "16 -> 8 (rounded) for the JPEG re-save"
        err, act, clip, grey = block_energies(pixels, qualities, cfg.hp_sigma, cfg.tile)
        pre["resave_channels"] = "grey" if grey else "RGB"
        ok = clip <= 0.5
        n_ok = int(ok.sum())
        if n_ok < MIN_BLOCKS:
            return Detection.not_applicable(
                f"only {n_ok} unclipped 8x8 blocks (needs {MIN_BLOCKS}): no error level to compare")
        bins = max(1, min(cfg.bins, n_ok // 32))
        log_a = np.log(act + 1.0)
        z = np.mean([content_z(np.log(e + 0.1), log_a, ok, bins) for e in err], axis=0)
        win = max(1, min(cfg.window, *z.shape))
        zmap = cv2.blur(z, (win, win), borderType=cv2.BORDER_REFLECT) if win > 1 else z
        # block centres sit at (i + 0.5) * 8: pixel x reads the grid at (x + 0.5) / 8 - 0.5
        # (bilinear; partial blocks at the right/bottom edge take the last blocks' values)
        to_grid = np.array([[1 / BLOCK, 0, 0.5 / BLOCK - 0.5], [0, 1 / BLOCK, 0.5 / BLOCK - 0.5]])
        full = cv2.warpAffine(zmap, to_grid, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
        return Raw(
            map=full,
            stat=float(np.quantile(zmap, cfg.quantile)),
            diagnostics={"qualities": qualities, "bins": bins, "window_px": win * BLOCK,
                         "clipped_blocks": round(1 - n_ok / z.size, 4),
                         "median_error": [round(float(np.median(e[ok])), 4) for e in err]},
            preprocessing=pre,
        )
