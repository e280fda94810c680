"""The manipulation kinds, for :mod:`artifacts.datasets.manipulation`.

:data:`KIND_FUNCS` maps each kind (``splice``, ``splice_blend``, ``copymove``,
``removal``; described in :mod:`artifacts.datasets.manipulation`) to a
function ``(rng, host, photo, pool, cfg)`` that edits the prepared ``host``
array of ``photo`` and returns ``(image, mask, info)``, or None when this
attempt failed (no donor, no room for the region); the caller then retries
with a new host.

These are building blocks of the generator, not a stable API of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import cv2
import numpy as np
from numpy.random import Generator

from .photos import Photo
from .processing import jpeg, meta_float, pick_interp, prepare, resize
from .regions import bbox, choose_shape, clean, paste_at, place, region, target_area

if TYPE_CHECKING:
    from .manipulation import GeneratorConfig

__all__ = ["KIND_FUNCS", "KindResult"]

KindResult = Optional[tuple[np.ndarray, np.ndarray, dict]]


# ------------------------------------------------------------------------ splice


def _pick_donor(rng: Generator, host: Photo, pool: Sequence[Photo]) -> Optional[Photo]:
    """A donor of another family, of the same colour class when possible."""
    others = [p for p in pool if p.family != host.family]
    same = [p for p in others if p.grey == host.grey]
    cands = same or others
    return cands[int(rng.integers(len(cands)))] if cands else None


def _adjust_colour(rng: Generator, img: np.ndarray, grey: bool) -> tuple[np.ndarray, dict]:
    gain = np.full(3, rng.uniform(0.9, 1.1)) if grey else rng.uniform(0.92, 1.08, 3)
    offset, gamma = rng.uniform(-12, 12), rng.uniform(0.85, 1.15)
    x = (img.astype(np.float32) / 255.0) ** gamma * gain.astype(np.float32) + offset / 255.0
    out = np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)
    return out, {"gain": [meta_float(g) for g in gain], "offset": meta_float(offset),
                 "gamma": meta_float(gamma)}


def _match_colour(window: np.ndarray, around: np.ndarray, grey: bool) -> tuple[np.ndarray, dict]:
    """Reinhard colour transfer: the donor window's per-channel mean and standard deviation in
    CIE Lab (grey: luminance only) set to those of the host pixels it replaces, as an editor
    matching a pasted object to its new scene would."""
    src = cv2.cvtColor(window, cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = cv2.cvtColor(around, cv2.COLOR_RGB2LAB).astype(np.float32)
    chans = 1 if grey else 3
    mu_s, sd_s = src.reshape(-1, 3).mean(0), src.reshape(-1, 3).std(0) + 1e-3
    mu_r, sd_r = ref.reshape(-1, 3).mean(0), ref.reshape(-1, 3).std(0) + 1e-3
    gain = np.clip(sd_r / sd_s, 0.5, 2.0)
    out = src.copy()
    out[..., :chans] = (src[..., :chans] - mu_s[:chans]) * gain[:chans] + mu_r[:chans]
    out = cv2.cvtColor(np.clip(np.rint(out), 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
    return out, {"method": "reinhard-lab", "gain": [meta_float(g) for g in gain[:chans]]}


def _splice(rng: Generator, host: np.ndarray, photo: Photo, pool: Sequence[Photo],
            cfg: GeneratorConfig, blend: bool) -> KindResult:
    H, W = host.shape[:2]
    donor_photo = _pick_donor(rng, photo, pool)
    if donor_photo is None:
        return None
    donor, dinfo = prepare(rng, donor_photo, cfg)
    if photo.grey and not donor_photo.grey:
        donor = np.repeat(cv2.cvtColor(donor, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    target, hi = target_area(rng, cfg, H * W), cfg.area[1] * H * W
    dh, dw = donor.shape[:2]
    scale = max(float(rng.uniform(*cfg.donor_scale)), float(np.sqrt(2.5 * target / (dh * dw))))
    interp = pick_interp(rng, scale)
    D = resize(donor, (round(dh * scale), round(dw * scale)), interp)
    dinfo.update(rescale=meta_float(scale), interp=interp)
    m_d, sinfo = region(rng, D, target, hi, choose_shape(rng, cfg), max_hw=(H - 2, W - 2))
    if m_d is None:
        return None
    y0, x0, y1, x1 = bbox(m_d)
    pos = place(rng, m_d[y0:y1, x0:x1], (H, W))
    if pos is None:
        return None
    mask = paste_at(m_d[y0:y1, x0:x1], pos, (H, W))

    # Donor layer: the donor aligned on the host, over the region plus a margin.
    dy, dx, pad = pos[0] - y0, pos[1] - x0, 16
    hy0, hx0 = max(0, pos[0] - pad, dy), max(0, pos[1] - pad, dx)
    hy1 = min(H, pos[0] + y1 - y0 + pad, dy + D.shape[0])
    hx1 = min(W, pos[1] + x1 - x0 + pad, dx + D.shape[1])
    window = D[hy0 - dy : hy1 - dy, hx0 - dx : hx1 - dx]
    if rng.random() < 0.3:
        quality = int(rng.integers(50, 96))
        window = jpeg(window, quality, photo.grey)
        dinfo["jpeg"] = quality
    if cfg.colour_match and rng.random() < cfg.colour_match:
        window, dinfo["colour_match"] = _match_colour(window, host[hy0:hy1, hx0:hx1], photo.grey)
    elif rng.random() < 0.5:
        window, dinfo["colour"] = _adjust_colour(rng, window, photo.grey)
    layer = host.copy()
    layer[hy0:hy1, hx0:hx1] = window
    valid = np.zeros((H, W), np.float32)
    valid[hy0:hy1, hx0:hx1] = 1.0

    if not blend:
        out, binfo = np.where(mask[:, :, None], layer, host), {"method": "hard"}
    elif rng.random() < 0.5:
        sigma = float(rng.uniform(1.0, 4.0))
        alpha = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma) * valid
        mixed = alpha[:, :, None] * layer + (1.0 - alpha[:, :, None]) * host
        out = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        mask = clean(alpha > 0.5)
        binfo = {"method": "feather", "sigma": meta_float(sigma)}
    else:
        mode = "normal" if rng.random() < 0.7 else "mixed"
        flag = cv2.NORMAL_CLONE if mode == "normal" else cv2.MIXED_CLONE
        h, w = y1 - y0, x1 - x0
        cloned = cv2.seamlessClone(layer, host, mask.astype(np.uint8) * 255,
                                   (pos[1] + w // 2, pos[0] + h // 2), flag)
        out, binfo = np.where(mask[:, :, None], cloned, host), {"method": "poisson", "mode": mode}
    return out, mask, {"donor": dinfo, "shape": sinfo, "blend": binfo, "position": list(pos)}


# ---------------------------------------------------------------------- copymove


def _warp_patch(patch: np.ndarray, pmask: np.ndarray, angle: float, scale: float
                ) -> tuple[np.ndarray, np.ndarray]:
    ph, pw = pmask.shape
    M = cv2.getRotationMatrix2D((pw / 2.0, ph / 2.0), angle, scale)
    corners = np.array([[0, 0, 1], [pw, 0, 1], [0, ph, 1], [pw, ph, 1]], np.float64) @ M.T
    M[:, 2] -= corners.min(0)
    size = tuple(int(np.ceil(v)) for v in np.ptp(corners, axis=0))
    patch = cv2.warpAffine(patch, M, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    pmask = cv2.warpAffine(pmask.astype(np.float32), M, size, flags=cv2.INTER_LINEAR) > 0.5
    return patch, clean(pmask)


def _copymove(rng: Generator, host: np.ndarray, photo: Photo, pool: Sequence[Photo],
              cfg: GeneratorConfig) -> KindResult:
    H, W = host.shape[:2]
    target, hi = target_area(rng, cfg, H * W), cfg.area[1] * H * W
    src, sinfo = region(rng, host, target, hi, choose_shape(rng, cfg),
                        max_hw=(int(H * 0.7), int(W * 0.7)))
    if src is None:
        return None
    angle = float(rng.uniform(-30, 30)) if rng.random() < 0.4 else 0.0
    scale = float(rng.uniform(0.8, 1.25)) if rng.random() < 0.4 else 1.0
    flip = bool(rng.random() < 0.15)
    y0, x0, y1, x1 = bbox(src)
    patch, pmask = host[y0:y1, x0:x1], src[y0:y1, x0:x1]
    if flip:
        patch, pmask = patch[:, ::-1], pmask[:, ::-1]
    if angle or scale != 1.0:
        patch, pmask = _warp_patch(np.ascontiguousarray(patch), pmask, angle, scale)
        ty0, tx0, ty1, tx1 = bbox(pmask)
        patch, pmask = patch[ty0:ty1, tx0:tx1], pmask[ty0:ty1, tx0:tx1]
    keep_out = cv2.dilate(src.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    for _ in range(30):
        pos = place(rng, pmask, (H, W))
        if pos is None:
            return None
        mask = paste_at(pmask, pos, (H, W))
        if not (mask & keep_out).any():
            break
    else:
        return None
    out = host.copy()
    out[mask] = patch[pmask]
    info = {"shape": sinfo, "source": [y0, x0, y1, x1], "position": list(pos),
            "angle": meta_float(angle), "scale": meta_float(scale), "flip": flip}
    return out, mask, info


# ----------------------------------------------------------------------- removal


def _clone_offset(rng: Generator, host: np.ndarray, mask: np.ndarray) -> Optional[tuple[int, int]]:
    """Offset of a nearby, non-overlapping source patch whose surroundings
    best match the target's (as a person using a clone stamp would pick)."""
    H, W = mask.shape
    y0, x0, y1, x1 = bbox(mask)
    m8 = mask.astype(np.uint8)
    keep_out = cv2.dilate(m8, np.ones((5, 5), np.uint8)) > 0
    ring = (cv2.dilate(m8, np.ones((7, 7), np.uint8)) > 0) & ~mask
    ry, rx = np.nonzero(ring)
    ring_px = host[ry, rx].astype(np.float32)
    best, best_cost = None, np.inf
    for _ in range(24):
        a, f = rng.uniform(0, 2 * np.pi), rng.uniform(1.05, 2.0)
        dy, dx = int(round(f * (y1 - y0) * np.sin(a))), int(round(f * (x1 - x0) * np.cos(a)))
        if not (0 <= y0 + dy - 3 and y1 + dy + 3 <= H and 0 <= x0 + dx - 3 and x1 + dx + 3 <= W):
            continue
        if keep_out[y0 + dy : y1 + dy, x0 + dx : x1 + dx][mask[y0:y1, x0:x1]].any():
            continue
        # match the surroundings, and fill with background-like content
        inner = host[y0 + dy : y1 + dy, x0 + dx : x1 + dx][mask[y0:y1, x0:x1]]
        cost = float(np.abs(host[ry + dy, rx + dx].astype(np.float32) - ring_px).mean()
                     + np.abs(inner.mean(0) - ring_px.mean(0)).mean())
        if cost < best_cost:
            best, best_cost = (dy, dx), cost
    return best


def _removal(rng: Generator, host: np.ndarray, photo: Photo, pool: Sequence[Photo],
             cfg: GeneratorConfig) -> KindResult:
    H, W = host.shape[:2]
    target, hi = target_area(rng, cfg, H * W), cfg.area[1] * H * W
    mask, sinfo = region(rng, host, target, hi, choose_shape(rng, cfg, prefer_segment=True),
                         max_hw=(int(H * 0.8), int(W * 0.8)))
    if mask is None:
        return None
    grow = int(rng.integers(0, 4))
    if grow:  # people select an object generously before removing it
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        mask = cv2.dilate(mask.astype(np.uint8), kernel) > 0
    method = ("telea", "ns", "clone", "heal")[int(rng.integers(4))]
    info: dict[str, Any] = {"shape": sinfo, "grow": grow}
    if method in ("clone", "heal"):
        offset = _clone_offset(rng, host, mask)
        if offset is None:
            method = "telea"  # no room for a source patch: fall back to inpainting
        else:
            dy, dx = offset
            y0, x0, y1, x1 = bbox(mask)
            source = paste_at(mask[y0:y1, x0:x1], (y0 + dy, x0 + dx), (H, W))
    if method == "clone":
        out = host.copy()
        out[mask] = host[source]  # same shape, same raster order
        info["offset"] = [dy, dx]
    elif method == "heal":
        h, w = y1 - y0, x1 - x0
        healed = cv2.seamlessClone(host, host, source.astype(np.uint8) * 255,
                                   (x0 + w // 2, y0 + h // 2), cv2.NORMAL_CLONE)
        out = np.where(mask[:, :, None], healed, host)
        info["offset"] = [dy, dx]
    else:
        radius = int(rng.integers(2, 6))
        flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
        src = np.ascontiguousarray(host[:, :, 0]) if photo.grey else host
        out = cv2.inpaint(src, mask.astype(np.uint8), radius, flag)
        if photo.grey:
            out = np.repeat(out[:, :, None], 3, axis=2)
        info["radius"] = radius
    info["method"] = method
    return out, mask, info


#: Kind name -> ``(rng, host, photo, pool, cfg) -> KindResult``.
KIND_FUNCS: dict[str, Callable[..., KindResult]] = {
    "splice": lambda *a: _splice(*a, blend=False),
    "splice_blend": lambda *a: _splice(*a, blend=True),
    "copymove": _copymove,
    "removal": _removal,
}
