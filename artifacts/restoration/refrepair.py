"""Training-free reference-guided repair of novel views (task ``refrepair``).

A novel view (a NeRF / Gaussian-splatting render) is broken in places; a no-reference view metric
(``views/puzzlesim``) gives a map of where. :func:`repair` replaces the broken regions with content
brought over from clean reference views of the same scene and leaves the rest of the view exactly
as it was. Nothing is learnt and nothing here ever sees a ground-truth view.

The steps:

1. **Region.** The map is thresholded (``threshold``), small specks are dropped, and the region
   is grown by ``dilate`` pixels (the map is blurry at the edges of a broken area).
2. **References.** SIFT features of the view, taken only where the view is good, are matched to
   every reference (ratio test); a RANSAC homography per reference gives an inlier count. The
   ``n_refs`` references with most inliers are used; a reference with fewer than ``min_inliers``
   is not.
3. **Dense alignment.** Each chosen reference is warped by its homography, then refined by DIS
   optical flow from the view to the warped reference. The flow is trusted only where the view is
   good; inside the broken region it is replaced by a normalised-convolution fill of the good flow
   around it (a broken region gives meaningless flow).
4. **Candidates and choice.** Every aligned reference is a candidate; a low-frequency colour
   correction (the residual view - candidate over good pixels, spread by normalised convolution)
   is added to each. How well a candidate fits is measured where it can be checked without ground
   truth: its error against the view over good pixels, spread into the region the same way. The
   candidates are fused per pixel with weights that fall with that expected error; the Telea
   inpainting of the view (``cv2.inpaint``) is the fallback where no candidate is valid or fits.
5. **Per-area decision.** The map errs both ways (on lego it lights up much of the object at
   every severity, with pixel precision about 0.2) and wide-baseline references align poorly, so
   replacing a good pixel costs more than repairing a bad one gains. Each connected area of the
   region is therefore kept or replaced as a whole, judged without ground truth:

   * an area whose mean trust in reference content is at least ``region_trust`` is replaced only
     when the content fits the view on a ring of good pixels around it (mean |view - content|
     within ``ring`` pixels, at most ``ring_max``) *and* the view inside departs from the content
     by at least ``region_ratio`` times that ring error (floored at ``ring_floor``): the content is
     right there, and the view is not;
   * any other area is kept. With ``inpaint_areas`` it gets the inpainting instead, but only
     where the view departs from it by at least ``telea_depart`` levels on average (a hole of a
     flat wrong colour). That is off by default: on lego (threshold 0.22) the map flags whole parts
     of the object whose view departs from the inpainting by more than 120 levels, and inpainting
     them cost up to 3.6 dB a kind; no departure bar separated those from real holes.

   The former per-pixel gate (a pixel replaced only where the view departs from the content by more
   than ``gate_low`` times the content's expected error: the largest of the ring error, ``r`` times
   the local contrast, the candidates' spread and ``err_floor``) is still there (``gate=True``), off
   by default: inside an accepted area it cost more than it saved on the tuning views.
6. **Blending.** The blend weight is the feathered accepted region (Gaussian, ``feather`` pixels),
   times the feathered gate when on; where the weight is 0 the view is copied exactly.

The default ``threshold`` is 0.30, not PuzzleSim's detection threshold 0.22: on the tuning views
0.22 flags about a fifth of a lego view, mostly good pixels. With the per-area decision 0.22 is
safe too (tuning views, ring_max 10, region_ratio 4: lego +0.01 dB, fern +0.42 dB against +0.24 and
+0.18 with the defaults) but it wins nothing on lego, so the default stays.

All colour work is float32 RGB in [0, 255]; input and output are ``H,W,3`` uint8.
"""
from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from artifacts.restoration.base import grow_mask


@dataclass
class RefRepairConfig:
    threshold: float = 0.30   # map value above which a pixel is broken (PuzzleSim's own is 0.22; see notes)
    dilate: int = 6           # pixels the broken region is grown by
    min_area: int = 24        # connected broken areas smaller than this (pixels) are left alone
    feather: float = 3.0      # Gaussian sigma (pixels) of the blend weight's soft edge
    n_refs: int = 3           # references fused per view
    min_inliers: int = 15     # a reference with fewer homography inliers is not used
    ratio: float = 0.8        # Lowe's ratio test for SIFT matches
    flow: bool = True         # refine the homography by DIS optical flow
    fill_sigma: float = 12.0  # sigma (pixels) of the normalised-convolution fills (flow, colour, error)
    err_scale: float = 12.0   # expected error (8-bit levels) at which a candidate's weight halves
    max_err: float = 40.0     # a fused candidate expected worse than this gives way to the inpainting
    inpaint_radius: int = 5   # cv2.inpaint radius of the fallback
    work_side: int = 640      # references are resized so their long side is at most this (for speed)
    gate: bool = False        # per-pixel gate inside a replaced area (see the module docstring)
    gate_sigma: float = 3.0   # smoothing (pixels) of the departure and candidate-spread maps
    gate_low: float = 3.0     # departure / expected error below which a pixel is kept
    gate_width: float = 1.0   # ... and above gate_low + gate_width fully replaced
    err_floor: float = 10.0   # lowest expected error (8-bit levels) of any repair content
    regions: bool = True      # decide keep/replace per connected area of the region (docstring)
    ring: int = 8             # width (pixels) of the ring of good pixels around an area that checks the content
    ring_max: float = 16.0    # an area whose content misfits its ring by more (mean 8-bit levels) is kept
    ring_floor: float = 4.0   # lowest ring error used in the ratio test
    region_ratio: float = 2.0  # an area is replaced when the view departs this many times the ring error
    region_trust: float = 0.8  # areas with less mean trust in reference content count as inpainting areas
    inpaint_areas: bool = False  # let areas without trusted reference content be inpainted (docstring)
    telea_depart: float = 80.0  # ... then only where the view departs from the inpainting by more


@dataclass
class RepairResult:
    image: np.ndarray                       # H,W,3 uint8, the repaired view
    mask: np.ndarray                        # H,W bool, where the weight is > 0
    weight: np.ndarray                      # H,W float32 in [0, 1], the blend weight of the repair
    meta: dict[str, Any] = field(default_factory=dict)


def repair(view: np.ndarray, refs: Sequence[np.ndarray], artifact_map: np.ndarray,
           config: RefRepairConfig | None = None) -> RepairResult:
    """Repair the broken regions of ``view`` (where ``artifact_map`` > threshold) from ``refs``.

    ``meta`` reports the references used and their inliers, the region and repaired fractions,
    ``regions`` (areas found, replaced from references, inpainted) and ``timings``.
    """
    cfg = config or RefRepairConfig()
    view = _check_image(view, "view")
    amap = np.asarray(artifact_map, dtype=np.float32)
    if amap.shape != view.shape[:2]:
        raise ValueError(f"artifact_map has shape {amap.shape}, the view is {view.shape[:2]}: "
                         "the map must be H,W like the view")
    refs = [_check_image(r, f"refs[{i}]") for i, r in enumerate(refs)]
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    meta: dict[str, Any] = {"config": asdict(cfg), "threshold": cfg.threshold, "refs_used": [],
                            "inliers": {}, "timings": timings}

    content = _content(view, refs, amap, cfg, meta)
    if content is None:
        timings["total"] = time.perf_counter() - t0
        return RepairResult(view.copy(), np.zeros(amap.shape, bool), np.zeros(amap.shape, np.float32), meta)
    weight = _decide(view, content, cfg, meta)
    out = view.astype(np.float32) * (1 - weight[..., None]) + content.fill * weight[..., None]
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    mask = weight > 0
    out[~mask] = view[~mask]
    bad = content.bad
    meta["trust_mean"] = float(content.trust[bad].mean()) if bad.any() else 0.0
    meta["repaired_fraction"] = float(mask.mean())
    timings["total"] = time.perf_counter() - t0
    return RepairResult(out, mask, weight, meta)


@dataclass
class _Content:
    bad: np.ndarray        # H,W bool, the broken region (thresholded, cleaned, grown)
    fill: np.ndarray       # H,W,3 float32, the repair content (reference content, Telea where untrusted)
    fused: np.ndarray      # H,W,3 float32, the fused reference content alone (Telea where there is none)
    expected: np.ndarray   # H,W float32, the expected error of the reference content (8-bit levels)
    trust: np.ndarray      # H,W float32 in [0, 1], the share of reference content in ``fill``


def _content(view: np.ndarray, refs: Sequence[np.ndarray], amap: np.ndarray, cfg: RefRepairConfig,
             meta: dict[str, Any]) -> "_Content | None":
    """Steps 1-4: the region and the repair content for it (None when the region is empty)."""
    import cv2

    timings = meta["timings"]
    bad = _region(amap, cfg)
    meta["region_fraction"] = float(bad.mean())
    if not bad.any():
        return None
    good = ~bad
    viewf = view.astype(np.float32)
    gray = cv2.cvtColor(view, cv2.COLOR_RGB2GRAY)

    # -- references: ranked by homography inliers over the view's good pixels ------------------------
    t = time.perf_counter()
    ranked = _rank_refs(gray, good, refs, cfg)
    timings["match"] = time.perf_counter() - t
    chosen = [(i, h) for i, h, n in ranked[:cfg.n_refs] if h is not None and n >= max(cfg.min_inliers, 4)]
    meta["inliers"] = {str(i): int(n) for i, _, n in ranked}
    meta["refs_used"] = [int(i) for i, _ in chosen]

    # -- candidates: aligned references, each with its expected error --------------------------------
    t = time.perf_counter()
    smooth = _Filler(good, cfg.fill_sigma)
    cands, errs = [], []
    for i, hom in chosen:
        ref, valid = _align(view, gray, good, refs[i], hom, smooth, cfg)
        ok = good & valid
        resid = np.where(ok[..., None], viewf - ref, 0)
        ref = ref + _Filler(ok, cfg.fill_sigma * 2).fill(resid)   # low-frequency colour correction
        err = np.abs(viewf - ref).mean(axis=2)
        exp_err = _Filler(ok, cfg.fill_sigma).fill(err[..., None])[..., 0]
        # a misaligned candidate errs most where the content is busy: error ~ r * local contrast,
        # r fitted over the good pixels, applied to the candidate's own contrast in the region
        busy = _busy(ref, cfg.gate_sigma)
        r = float((err * busy)[ok].sum() / max((busy * busy)[ok].sum(), 1e-6))
        exp_err = np.maximum(exp_err, r * busy)
        exp_err[~valid] = np.inf
        cands.append(ref)
        errs.append(exp_err)
    timings["align"] = time.perf_counter() - t

    # -- fusion, fallback and the gate ---------------------------------------------------------------
    t = time.perf_counter()
    inpainted = cv2.inpaint(view, bad.astype(np.uint8) * 255, cfg.inpaint_radius, cv2.INPAINT_TELEA)
    inpainted = inpainted.astype(np.float32)
    if cands:
        cands_a, errs_a = np.stack(cands), np.stack(errs)
        w = 1.0 / (1.0 + (errs_a / cfg.err_scale) ** 2)
        w[~np.isfinite(errs_a)] = 0
        wsum = w.sum(0)
        fused = (cands_a * w[..., None]).sum(0) / np.maximum(wsum, 1e-6)[..., None]
        best = np.where(np.isfinite(errs_a), errs_a, 1e9).min(0)
        # disagreement among the candidates: another sign of a poor alignment
        spread = (np.abs(cands_a - fused) * w[..., None]).sum(0).mean(-1) / np.maximum(wsum, 1e-6)
        expected = np.maximum(np.maximum(best, _blur(spread, cfg.gate_sigma)), cfg.err_floor)
        # trust in the fused reference content: 1 where it fits well, 0 past max_err
        trust = np.clip((cfg.max_err - expected) / (cfg.max_err / 2), 0, 1) * (wsum > 0)
        fill = fused * trust[..., None] + inpainted * (1 - trust[..., None])
        fused = np.where(wsum[..., None] > 0, fused, inpainted)
    else:
        trust = np.zeros(bad.shape, np.float32)
        expected = np.full(bad.shape, cfg.max_err, np.float32)
        fill = inpainted
        fused = inpainted
    timings["fuse"] = time.perf_counter() - t
    return _Content(bad, fill.astype(np.float32), fused.astype(np.float32), expected.astype(np.float32),
                    trust.astype(np.float32))


def _decide(view: np.ndarray, c: _Content, cfg: RefRepairConfig, meta: dict[str, Any]) -> np.ndarray:
    """Steps 5-6: the blend weight of the repair content (0 where the view is kept exactly)."""
    viewf = view.astype(np.float32)
    region = c.bad
    if cfg.regions:
        region = _select_regions(viewf, c, cfg, meta)
    gate: np.ndarray | float = 1.0
    if cfg.gate:
        # a pixel is replaced only where the view departs from the repair content by clearly more
        # than that content's own expected error (the map is coarse and errs both ways)
        depart = _blur(np.abs(viewf - c.fill).mean(-1), cfg.gate_sigma)
        gate = _blur(np.clip((depart - cfg.gate_low * c.expected) / (cfg.gate_width * c.expected), 0, 1),
                     cfg.feather)
    weight = (_feather(region, cfg.feather) * gate).astype(np.float32)
    weight[weight < 1e-3] = 0
    return weight


def _region_stats(viewf: np.ndarray, c: _Content, cfg: RefRepairConfig) -> list[dict[str, Any]]:
    """Per connected area of the region: its pixels (slice, mask) and how the repair content fits.

    ``ring``: mean |view - reference content| over the good pixels within ``cfg.ring`` of the area
    (how well the content is aligned right there); ``inside``: the same inside the area (how far the
    view departs from it); ``telea``: mean |view - fill| inside; ``trust``: mean trust inside.
    """
    import cv2

    n, lab, st, _ = cv2.connectedComponentsWithStats(c.bad.astype(np.uint8), connectivity=8)
    h, w = c.bad.shape
    r = max(int(cfg.ring), 1)
    d_fused = np.abs(viewf - c.fused).mean(-1)
    d_fill = np.abs(viewf - c.fill).mean(-1)
    out = []
    for i in range(1, n):
        x, y, bw, bh = st[i, :4]
        sl = (slice(max(y - r, 0), min(y + bh + r, h)), slice(max(x - r, 0), min(x + bw + r, w)))
        comp = lab[sl] == i
        ring = grow_mask(comp, r) & ~c.bad[sl]
        df = d_fused[sl]
        out.append({"slice": sl, "mask": comp, "area": int(comp.sum()),
                    "ring": float(df[ring].mean()) if ring.any() else float("inf"),
                    "inside": float(df[comp].mean()), "telea": float(d_fill[sl][comp].mean()),
                    "trust": float(c.trust[sl][comp].mean()),
                    "expected": float(np.minimum(c.expected[sl][comp], 1e4).mean())})
    return out


def _select_regions(viewf: np.ndarray, c: _Content, cfg: RefRepairConfig, meta: dict[str, Any]) -> np.ndarray:
    """The areas of the region worth replacing (see the module docstring)."""
    keep = np.zeros(c.bad.shape, bool)
    n_ref = n_telea = 0
    stats = _region_stats(viewf, c, cfg)
    for s in stats:
        if s["trust"] >= cfg.region_trust:
            ok = s["ring"] <= cfg.ring_max and s["inside"] >= cfg.region_ratio * max(s["ring"], cfg.ring_floor)
            n_ref += ok
        else:
            ok = cfg.inpaint_areas and s["telea"] >= cfg.telea_depart
            n_telea += ok
        if ok:
            keep[s["slice"]] |= s["mask"]
    meta["regions"] = {"areas": len(stats), "by_reference": int(n_ref), "by_inpainting": int(n_telea)}
    return keep


# -- pieces -------------------------------------------------------------------------------------------

def _check_image(img: np.ndarray, name: str) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"{name} must be an H,W,3 uint8 RGB array, got shape {img.shape} dtype {img.dtype}")
    return img


def _region(amap: np.ndarray, cfg: RefRepairConfig) -> np.ndarray:
    """The broken region: thresholded map, specks dropped, grown by ``cfg.dilate`` pixels."""
    import cv2

    bad = (amap > cfg.threshold).astype(np.uint8)
    if cfg.min_area > 1 and bad.any():
        n, lab, stats, _ = cv2.connectedComponentsWithStats(bad, connectivity=8)
        small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < cfg.min_area)
        small = small[small > 0]
        if small.size:
            bad[np.isin(lab, small)] = 0
    return grow_mask(bad.astype(bool), cfg.dilate)


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(np.ascontiguousarray(a, dtype=np.float32), (0, 0), sigma) if sigma > 0 else a


def _busy(img: np.ndarray, sigma: float) -> np.ndarray:
    """Local contrast: smoothed gradient magnitude of the mean channel (8-bit levels per pixel)."""
    import cv2

    g = img.mean(-1).astype(np.float32)
    gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3) / 8, cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3) / 8
    return _blur(np.sqrt(gx * gx + gy * gy), max(sigma, 1.0))


def _feather(bad: np.ndarray, sigma: float) -> np.ndarray:
    """Blend weight: 1 inside the region, a Gaussian edge outward, exactly 0 far from it."""
    import cv2

    if sigma <= 0:
        return bad.astype(np.float32)
    grown = grow_mask(bad, int(np.ceil(2 * sigma))).astype(np.float32)
    w = cv2.GaussianBlur(grown, (0, 0), sigma)
    w = np.maximum(w, bad.astype(np.float32))
    w[w < 1e-3] = 0
    return np.clip(w, 0, 1).astype(np.float32)


class _Filler:
    """Normalised convolution: values known where ``known`` is true, spread by a Gaussian."""

    def __init__(self, known: np.ndarray, sigma: float):
        import cv2

        self.sigma = sigma
        self.known = known.astype(np.float32)
        self.den = cv2.GaussianBlur(self.known, (0, 0), sigma)
        self._coarse = None

    def fill(self, values: np.ndarray, keep: bool = False) -> np.ndarray:
        """H,W,C values -> H,W,C local weighted means of the known ones (``keep``: known pixels as they are)."""
        import cv2

        num = np.stack([cv2.GaussianBlur(np.ascontiguousarray(values[..., c] * self.known), (0, 0), self.sigma)
                        for c in range(values.shape[2])], axis=-1)
        out = num / np.maximum(self.den, 1e-6)[..., None]
        # far from any known pixel: fall back to the global mean of the known values
        far = self.den < 1e-3
        if far.any():
            k = self.known > 0
            mean = values[k].mean(0) if k.any() else np.zeros(values.shape[2], np.float32)
            out[far] = mean
        return (np.where(self.known[..., None] > 0, values, out) if keep else out).astype(np.float32)


def _resize_to(img: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    import cv2

    s = side / max(img.shape[:2])
    if s >= 1:
        return img, 1.0
    return cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA), s


def _sift(gray: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """SIFT keypoint positions (N,2 float32) and descriptors of a grayscale image."""
    import cv2

    kp, desc = cv2.SIFT_create(nfeatures=1500).detectAndCompute(gray, mask)
    return np.float32([k.pt for k in kp]).reshape(-1, 2), desc


_REF_CACHE: "OrderedDict[bytes, tuple[np.ndarray, np.ndarray | None]]" = OrderedDict()


def _ref_features(img: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """SIFT of a reference, remembered by content hash (the same references serve many views)."""
    import cv2

    key = hashlib.sha1(np.ascontiguousarray(img).data).digest() + bytes(str(img.shape), "ascii")
    if key in _REF_CACHE:
        _REF_CACHE.move_to_end(key)
        return _REF_CACHE[key]
    feats = _sift(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), None)
    _REF_CACHE[key] = feats
    while len(_REF_CACHE) > 256:
        _REF_CACHE.popitem(last=False)
    return feats


def _rank_refs(gray: np.ndarray, good: np.ndarray, refs: Sequence[np.ndarray],
               cfg: RefRepairConfig) -> list[tuple[int, np.ndarray | None, int]]:
    """(index, homography ref->view in original ref pixels, inlier count), best first."""
    import cv2

    kv, dv = _sift(gray, good.astype(np.uint8) * 255)
    out = []
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    for i, ref in enumerate(refs):
        small, s = _resize_to(ref, cfg.work_side)
        kr, dr = _ref_features(small)
        if dv is None or dr is None or len(kv) < 4 or len(kr) < 4:
            out.append((i, None, 0))
            continue
        pairs = matcher.knnMatch(dv, dr, k=2)
        m = [p[0] for p in pairs if len(p) == 2 and p[0].distance < cfg.ratio * p[1].distance]
        if len(m) < 4:
            out.append((i, None, 0))
            continue
        pv = kv[[x.queryIdx for x in m]]
        pr = kr[[x.trainIdx for x in m]] / s
        hom, inl = cv2.findHomography(pr, pv, cv2.RANSAC, 4.0)
        n = int(inl.sum()) if hom is not None else 0
        out.append((i, hom, n))
    out.sort(key=lambda x: -x[2])
    return out


def _align(view: np.ndarray, gray: np.ndarray, good: np.ndarray, ref: np.ndarray, hom: np.ndarray,
           smooth: _Filler, cfg: RefRepairConfig) -> tuple[np.ndarray, np.ndarray]:
    """The reference brought into the view's frame (float32 RGB) and where it is defined."""
    import cv2

    h, w = view.shape[:2]
    ones = np.full(ref.shape[:2], 255, np.uint8)
    warped = cv2.warpPerspective(ref, hom, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    valid = cv2.warpPerspective(ones, hom, (w, h), flags=cv2.INTER_NEAREST) > 0
    if cfg.flow:
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        flow = dis.calc(gray, cv2.cvtColor(warped, cv2.COLOR_RGB2GRAY), None)
        flow = smooth.fill(flow, keep=True)
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        mx, my = gx + flow[..., 0], gy + flow[..., 1]
        warped = cv2.remap(warped, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        valid = cv2.remap(valid.astype(np.uint8), mx, my, cv2.INTER_NEAREST, borderValue=0) > 0
    return warped.astype(np.float32), valid
