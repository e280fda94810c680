"""Image processing around an edit, for :mod:`artifacts.datasets.manipulation`.

* :func:`prepare` -- what every photo (host or donor) goes through before it
  is edited: a random crop, then a downscale to ``GeneratorConfig.max_side``,
  then (only when ``GeneratorConfig.host_jpeg`` is set) a JPEG round-trip at a
  random quality of that range.
* :func:`post_process` -- the random post-processing chain (resize, JPEG,
  blur, noise) applied after the edit, identically to the tampered image and
  to the untouched host.
* :func:`resize`, :func:`pick_interp` and :func:`jpeg` -- the resampling and
  JPEG round-trip both use, and that the edits reuse on donors.
* :func:`meta_float` -- how every float is recorded in ``Sample.meta``.

These are building blocks of the generator, not a stable API of their own.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import cv2
import numpy as np
from numpy.random import Generator
from PIL import Image

from .photos import Photo

if TYPE_CHECKING:
    from .manipulation import GeneratorConfig

__all__ = ["jpeg", "meta_float", "pick_interp", "post_process", "prepare", "resize"]

_INTERP = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


def meta_float(x: float) -> float:
    """``x`` rounded to 4 decimals, as floats are stored in ``Sample.meta``."""
    return round(float(x), 4)


def jpeg(img: np.ndarray, quality: int, grey: bool = False) -> np.ndarray:
    """JPEG round-trip of an RGB image (single-channel when ``grey``)."""
    buf = io.BytesIO()
    Image.fromarray(img[:, :, 0] if grey else img).save(buf, format="JPEG", quality=int(quality))
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return np.ascontiguousarray(out)


def resize(img: np.ndarray, size_hw: tuple[int, int], interp: str) -> np.ndarray:
    """Resize to ``size_hw`` with ``interp`` one of ``area``, ``linear``, ``cubic``."""
    return cv2.resize(img, (size_hw[1], size_hw[0]), interpolation=_INTERP[interp])


def pick_interp(rng: Generator, factor: float) -> str:
    """A random interpolation suited to a resize by ``factor``."""
    options = ("area", "linear", "cubic") if factor < 1 else ("linear", "cubic")
    return options[int(rng.integers(len(options)))]


def prepare(rng: Generator, photo: Photo, cfg: GeneratorConfig) -> tuple[np.ndarray, dict]:
    """Random crop, then downscale to ``cfg.max_side``, then, when ``cfg.host_jpeg`` is
    set, a JPEG round-trip at a quality drawn from that inclusive range (single-channel for
    greyscale photos; recorded as ``info["jpeg"]``).  Without ``host_jpeg`` no random number
    is drawn after the crop, so seeds give the same photos as before the option existed."""
    img = photo.image
    h, w = img.shape[:2]
    fy, fx = rng.uniform(cfg.crop[0], cfg.crop[1], size=2)
    ch = max(int(round(h * fy)), min(h, 2 * cfg.min_side))
    cw = max(int(round(w * fx)), min(w, 2 * cfg.min_side))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    img = img[y0 : y0 + ch, x0 : x0 + cw]
    scale = 1.0
    if cfg.max_side and max(ch, cw) > cfg.max_side:
        scale = cfg.max_side / max(ch, cw)
        img = resize(img, (max(1, round(ch * scale)), max(1, round(cw * scale))), "area")
    info = {"photo": photo.name, "crop": [y0, x0, ch, cw], "scale": meta_float(scale)}
    if cfg.host_jpeg is not None:
        quality = int(rng.integers(cfg.host_jpeg[0], cfg.host_jpeg[1] + 1))
        img = jpeg(np.ascontiguousarray(img), quality, photo.grey)
        info["jpeg"] = quality
    return np.array(img, dtype=np.uint8, copy=True), info


def post_process(rng: Generator, images: list[np.ndarray], mask: np.ndarray,
                 cfg: GeneratorConfig, grey: bool) -> tuple[list[np.ndarray], np.ndarray, list[dict]]:
    """Apply each op of ``cfg.post_ops`` with probability ``cfg.post_prob``, in
    a random order, identically to every image; resize the mask along."""
    ops: list[dict] = []
    for i in rng.permutation(len(cfg.post_ops)):
        op = cfg.post_ops[int(i)]
        if rng.random() >= cfg.post_prob:
            continue
        H, W = images[0].shape[:2]
        if op == "resize":
            f = max(float(rng.uniform(0.5, 1.5)), min(1.0, cfg.min_side / min(H, W)))
            size = (max(1, round(H * f)), max(1, round(W * f)))
            interp = pick_interp(rng, f)
            images = [resize(im, size, interp) for im in images]
            mask = cv2.resize(mask.astype(np.uint8), (size[1], size[0]),
                              interpolation=cv2.INTER_NEAREST) > 0
            ops.append({"op": op, "factor": meta_float(f), "size": list(size), "interp": interp})
        elif op == "jpeg":
            quality = int(rng.integers(60, 99))
            images = [jpeg(im, quality, grey) for im in images]
            ops.append({"op": op, "quality": quality})
        elif op == "blur":
            sigma = float(rng.uniform(0.3, 1.2))
            images = [cv2.GaussianBlur(im, (0, 0), sigma) for im in images]
            ops.append({"op": op, "sigma": meta_float(sigma)})
        elif op == "noise":
            sigma = float(rng.uniform(1.0, 5.0))
            noise = rng.normal(0.0, sigma, (H, W, 1 if grey else 3)).astype(np.float32)
            images = [np.clip(np.rint(im + noise), 0, 255).astype(np.uint8) for im in images]
            ops.append({"op": op, "sigma": meta_float(sigma)})
    return images, mask, ops
