"""Regions to manipulate, for :mod:`artifacts.datasets.manipulation`.

A region is one connected component, returned as a full-size bool mask by
:func:`region`, in one of the shapes of ``GeneratorConfig.shapes``:

``blob``
    Thresholded smooth noise on a radial bump: an irregular, rounded blob.
``polygon``
    A random star-shaped polygon, or an ellipse.
``segment``
    A union of adjacent SLIC superpixels grown by colour similarity, so that
    the boundary follows image edges (object-like).

Blobs and polygons are drawn locally and placed where the image has content
(gradient energy).  Also here: the mask geometry the edits share (bounding
box, cleaning, pasting a local mask at a position, random placement).

These are building blocks of the generator, not a stable API of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import cv2
import numpy as np
from numpy.random import Generator
from scipy import ndimage

from .processing import resize

if TYPE_CHECKING:
    from .manipulation import GeneratorConfig

__all__ = ["bbox", "choose_shape", "clean", "paste_at", "place", "region", "target_area"]

Box = tuple[int, int, int, int]  # y0, x0, y1, x1 (exclusive ends)


# ---------------------------------------------------------------- mask geometry


def bbox(mask: np.ndarray) -> Box:
    """Bounding box of the True pixels of a non-empty mask."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def _trim(mask: np.ndarray) -> np.ndarray:
    y0, x0, y1, x1 = bbox(mask)
    return mask[y0:y1, x0:x1]


def clean(mask: np.ndarray) -> np.ndarray:
    """Largest 8-connected component, holes filled."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n > 2:
        largest = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    else:
        largest = mask.astype(bool)
    return ndimage.binary_fill_holes(largest)


def paste_at(mask_local: np.ndarray, pos: tuple[int, int], shape_hw: tuple[int, int]) -> np.ndarray:
    """A ``shape_hw`` mask holding ``mask_local`` with its top-left at ``pos``."""
    out = np.zeros(shape_hw, bool)
    out[pos[0] : pos[0] + mask_local.shape[0], pos[1] : pos[1] + mask_local.shape[1]] = mask_local
    return out


def place(rng: Generator, local: np.ndarray, shape_hw: tuple[int, int]) -> Optional[tuple[int, int]]:
    """A uniformly random top-left position for ``local`` inside ``shape_hw``
    (None when it does not fit)."""
    h, w = local.shape
    if h > shape_hw[0] or w > shape_hw[1]:
        return None
    return int(rng.integers(0, shape_hw[0] - h + 1)), int(rng.integers(0, shape_hw[1] - w + 1))


# ------------------------------------------------------------------------ shapes


def _local_blob(rng: Generator, target: float, max_hw: tuple[int, int]) -> np.ndarray:
    """Thresholded smooth noise on a radial bump: an irregular, rounded blob."""
    ar = float(np.exp(rng.uniform(-0.6, 0.6)))
    side = np.sqrt(target / 0.5)
    h = int(np.clip(side * np.sqrt(ar), 8, max_hw[0]))
    w = int(np.clip(side / np.sqrt(ar), 8, max_hw[1]))
    g = int(rng.integers(3, 8))
    noise = cv2.resize(rng.standard_normal((g, g)).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]
    field_ = (1.0 - xx**2 - yy**2) + rng.uniform(0.3, 0.9) * noise
    keep = min(target / (h * w), 0.97)
    mask = field_ > np.quantile(field_, 1.0 - keep)
    return _trim(clean(mask))


def _local_polygon(rng: Generator, target: float, max_hw: tuple[int, int]) -> np.ndarray:
    """A random star-shaped polygon, or an ellipse (30%), of area ~target."""
    if rng.random() < 0.3:
        n, ang = 72, np.linspace(0, 2 * np.pi, 72, endpoint=False)
        rad = np.ones(n)
    else:
        n = int(rng.integers(4, 13))
        ang = (np.arange(n) + rng.uniform(-0.35, 0.35, n)) * 2 * np.pi / n
        rad = rng.uniform(0.45, 1.0, n)
    ar, rot = float(np.exp(rng.uniform(-0.7, 0.7))), rng.uniform(0, np.pi)
    x, y = rad * np.cos(ang) * ar, rad * np.sin(ang) / ar
    x, y = x * np.cos(rot) - y * np.sin(rot), x * np.sin(rot) + y * np.cos(rot)
    area0 = 0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))
    s = np.sqrt(target / area0)
    s = min(s, (max_hw[0] - 3) / np.ptp(y), (max_hw[1] - 3) / np.ptp(x))
    pts = np.stack([(x - x.min()) * s + 1, (y - y.min()) * s + 1], axis=1)
    canvas = np.zeros((int(np.ceil(pts[:, 1].max())) + 2, int(np.ceil(pts[:, 0].max())) + 2), np.uint8)
    cv2.fillPoly(canvas, [np.round(pts * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    return _trim(canvas > 0)


def _segment_region(rng: Generator, img: np.ndarray, target: float, hi: float) -> Optional[np.ndarray]:
    """Union of adjacent SLIC superpixels grown from a random seed by colour
    similarity, so that the boundary follows image edges (object-like)."""
    from skimage.segmentation import slic

    H, W = img.shape[:2]
    s = min(1.0, 256 / max(H, W))
    small = resize(img, (max(8, round(H * s)), max(8, round(W * s))), "area") if s < 1 else img
    n_seg = int(np.clip(6 * H * W / target, 40, 400))
    compactness = float(rng.uniform(6, 20))
    labels = slic(small, n_segments=n_seg, compactness=compactness, start_label=0, channel_axis=-1)
    if labels.max() < n_seg // 4:  # strong texture can collapse SLIC: be more compact
        labels = slic(small, n_segments=n_seg, compactness=4 * compactness, start_label=0,
                      channel_axis=-1)
    n = int(labels.max()) + 1
    if n < 4:
        return None
    px = (H * W) / labels.size  # full-resolution pixels per small pixel
    areas = np.bincount(labels.ravel(), minlength=n) * px
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float64)
    means = np.stack([np.bincount(labels.ravel(), lab[:, c], n) for c in range(3)], 1)
    means /= np.maximum(areas / px, 1)[:, None]
    yy, xx = np.indices(labels.shape)
    cents = np.stack([np.bincount(labels.ravel(), v.ravel().astype(np.float64), n) for v in (yy, xx)], 1)
    cents *= np.sqrt(px) / np.maximum(areas / px, 1)[:, None]  # full-resolution pixels
    adj = np.zeros((n, n), bool)
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1], labels[1:])):
        adj[a.ravel(), b.ravel()] = True
    adj |= adj.T
    np.fill_diagonal(adj, False)
    border = np.zeros(n, bool)
    border[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    inner = np.flatnonzero(~border) if (~border).any() else np.arange(n)

    # Grow from a few seeds; keep the most object-like region (largest colour
    # contrast between the region and its ring of neighbouring superpixels).
    best_score, best = -np.inf, None
    for seed in rng.choice(inner, size=min(3, len(inner)), replace=False):
        cand, score = _grow(rng, int(seed), means, cents, areas, adj, border, target, hi)
        if score > best_score:
            best_score, best = score, cand
    small_mask = best[labels].astype(np.float32)
    if s < 1:
        small_mask = cv2.GaussianBlur(cv2.resize(small_mask, (W, H), interpolation=cv2.INTER_LINEAR),
                                      (0, 0), 0.5 / s)
    mask = clean(small_mask > 0.5)
    return mask if mask.any() else None


def _grow(rng: Generator, seed: int, means: np.ndarray, cents: np.ndarray, areas: np.ndarray,
          adj: np.ndarray, border: np.ndarray, target: float, hi: float
          ) -> tuple[np.ndarray, float]:
    """Add the most similar neighbouring superpixel (with random noise and a
    pull towards the seed, for compactness) until the area reaches
    ``target``; returns the region and its objectness."""
    n = len(areas)
    grown = np.zeros(n, bool)
    grown[seed] = True
    area, temp = areas[seed], float(rng.uniform(3, 20))
    while area < target:
        frontier = adj[grown].any(0) & ~grown
        if not frontier.any():
            break
        mean = (means[grown] * areas[grown, None]).sum(0) / areas[grown].sum()
        spread = np.linalg.norm(cents - cents[seed], axis=1) / np.sqrt(target)
        cost = (np.linalg.norm(means - mean, axis=1) + 15.0 * spread + 1e3 * border
                + temp * rng.gumbel(size=n))
        cost[~frontier] = np.inf
        best = int(np.argmin(cost))
        if area + areas[best] > hi:
            break
        grown[best] = True
        area += areas[best]
    ring = adj[grown].any(0) & ~grown
    if not ring.any():
        return grown, 0.0
    inside = (means[grown] * areas[grown, None]).sum(0) / areas[grown].sum()
    outside = (means[ring] * areas[ring, None]).sum(0) / areas[ring].sum()
    return grown, float(np.linalg.norm(inside - outside) + 5.0 * rng.gumbel())


def _place_on_content(rng: Generator, local: np.ndarray, img: np.ndarray, tries: int = 4
                      ) -> Optional[tuple[int, int]]:
    """Best of a few random positions by gradient energy under the shape, so
    that regions carry content (an object, texture) rather than flat sky."""
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32)
    energy = np.abs(cv2.Sobel(grey, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    best, best_score = None, -np.inf
    for _ in range(tries):
        pos = place(rng, local, img.shape[:2])
        if pos is None:
            return None
        window = energy[pos[0] : pos[0] + local.shape[0], pos[1] : pos[1] + local.shape[1]]
        score = float(window[local].mean()) * float(np.exp(0.3 * rng.gumbel()))
        if score > best_score:
            best, best_score = pos, score
    return best


# ------------------------------------------------------------------- public API


def region(rng: Generator, img: np.ndarray, target: float, hi: float, shape: str,
           max_hw: Optional[tuple[int, int]] = None) -> tuple[Optional[np.ndarray], dict]:
    """A connected region of ``img`` (full-size bool mask) with area ~target,
    its bounding box within ``max_hw``; None when none could be made."""
    H, W = img.shape[:2]
    max_hw = (min(H, max_hw[0]), min(W, max_hw[1])) if max_hw else (H, W)
    if shape == "segment":
        mask = _segment_region(rng, img, target, hi)
        if mask is not None:
            y0, x0, y1, x1 = bbox(mask)
            if y1 - y0 > max_hw[0] or x1 - x0 > max_hw[1]:
                mask = None
        return mask, {"method": "segment"}
    maker = _local_blob if shape == "blob" else _local_polygon
    local = maker(rng, target, max_hw)
    pos = _place_on_content(rng, local, img)
    if pos is None:
        return None, {"method": shape}
    return paste_at(local, pos, (H, W)), {"method": shape}


def choose_shape(rng: Generator, cfg: GeneratorConfig, prefer_segment: bool = False) -> str:
    """A random shape among ``cfg.shapes`` (segments weighted up when
    ``prefer_segment``)."""
    weights = np.array([{"blob": 0.3, "polygon": 0.25, "segment": 0.6 if prefer_segment else 0.45}[s]
                        for s in cfg.shapes])
    return cfg.shapes[int(rng.choice(len(cfg.shapes), p=weights / weights.sum()))]


def target_area(rng: Generator, cfg: GeneratorConfig, n_px: int) -> float:
    """A log-uniform region area (pixels) a little inside ``cfg.area``."""
    lo, hi = cfg.area[0] * 1.1, cfg.area[1] * 0.95
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) * n_px
